"""Build steps: CloudFormation templates with the SSM documents embedded, and the Lambda zip."""
