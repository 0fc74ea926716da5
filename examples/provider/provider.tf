terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

# Everything can also come from the environment: ENGINE_ENDPOINT, ENGINE_API_KEY,
# ENGINE_CA_CERT_PEM, ENGINE_INSECURE_SKIP_VERIFY, ENGINE_REQUEST_TIMEOUT, ENGINE_MAX_RETRIES.
# Values set here win over the environment.
provider "engine" {
  endpoint = "https://engine-control.example.com"
  api_key  = var.engine_api_key # sensitive: never stored in state

  # A control plane behind a private CA:
  ca_cert_file = "${path.module}/engine-ca.pem"

  request_timeout = "30s"
  max_retries     = 4
}

variable "engine_api_key" {
  type      = string
  sensitive = true
}
