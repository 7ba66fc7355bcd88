"""certrotate: private TLS certificates kept fresh by AWS Secrets Manager rotation."""

__version__ = "0.1.0"
