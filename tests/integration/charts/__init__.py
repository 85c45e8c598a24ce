"""The Helm chart against a real API server: dry-run, install and RBAC."""
