"""stockworker: a Kafka-driven stock service over PostgreSQL."""
