# The seed topology: one Meridian per edge location, and Route 53 latency-based records
# that send each user to the nearest healthy location. Route 53 health-checks every
# instance's /health (200 while that instance sees at least one healthy region), and each
# instance health-checks every inference region from its own vantage point. Instances
# share nothing but their configuration.

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.aws_region
}

variable "aws_region" {
  description = "Region the AWS provider talks to (Route 53 is global)."
  type        = string
  default     = "us-east-1"
}

variable "zone_id" {
  description = "Route 53 hosted zone that holds the record."
  type        = string
}

variable "record_name" {
  description = "The name clients use, e.g. inference.example.com."
  type        = string
}

variable "instances" {
  description = "Meridian instances by location: the AWS region used for latency routing and the instance's public IPv4 address."
  type = map(object({
    aws_region = string
    ip         = string
  }))
}

variable "proxy_port" {
  description = "Meridian's proxy listener port (listen.proxy)."
  type        = number
  default     = 8000
}

resource "aws_route53_health_check" "meridian" {
  for_each          = var.instances
  ip_address        = each.value.ip
  port              = var.proxy_port
  type              = "HTTP"
  resource_path     = "/health"
  request_interval  = 10
  failure_threshold = 2
  tags = {
    Name = "meridian-${each.key}"
  }
}

resource "aws_route53_record" "meridian" {
  for_each        = var.instances
  zone_id         = var.zone_id
  name            = var.record_name
  type            = "A"
  ttl             = 30
  records         = [each.value.ip]
  set_identifier  = each.key
  health_check_id = aws_route53_health_check.meridian[each.key].id
  latency_routing_policy {
    region = each.value.aws_region
  }
}

output "health_checks" {
  value = { for k, hc in aws_route53_health_check.meridian : k => hc.id }
}
