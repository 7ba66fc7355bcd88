"""SSM Run Command documents: rendered from ``ssm_documents/install_certificate.sh``."""
