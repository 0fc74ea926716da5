terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

# Everything can also come from the environment: ENGINE_ENDPOINT, ENGINE_API_KEY,
# ENGINE_CA_CERT_PEM, ENGINE_INSECURE_SKIP_VERIFY, ENGINE_REQUEST_TIMEOUT, ENGINE_MAX_RETRIES,
# ENGINE_MANAGER.
# Values set here win over the environment. The simplest way to pass the API key is to leave
# api_key out and set ENGINE_API_KEY.
provider "engine" {
  endpoint = "https://engine-control.example.com"
  api_key  = var.engine_api_key # or leave it out and set ENGINE_API_KEY

  # A control plane behind a private CA:
  ca_cert_file = "${path.module}/engine-ca.pem"

  request_timeout = "30s"
  max_retries     = 4

  # The name this workspace owns engines under: another workspace's plan that would move one of
  # them fails and names it.
  manager = "team-a"
}

# ephemeral (Terraform 1.10 or later) keeps the key out of saved plan files: a variable that is
# only sensitive is written into `terraform plan -out` and shown by `terraform show -json`.
variable "engine_api_key" {
  type      = string
  sensitive = true
  ephemeral = true
}
