"""Unit tests of the Helm chart, the image recipe, the Argo CD health check and the dashboard."""
