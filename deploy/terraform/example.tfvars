zone_id     = "Z0000000000000000000"
record_name = "inference.example.com"
instances = {
  "edge-virginia"  = { aws_region = "us-east-1", ip = "192.0.2.10" }
  "edge-frankfurt" = { aws_region = "eu-central-1", ip = "192.0.2.20" }
  "edge-mumbai"    = { aws_region = "ap-south-1", ip = "192.0.2.30" }
}
