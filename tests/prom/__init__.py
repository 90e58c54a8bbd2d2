"""A real Prometheus server and a fake exporter for the slow integration tests."""
