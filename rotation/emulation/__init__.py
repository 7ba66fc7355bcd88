"""Local AWS for the demo, the benchmarks and the tests: moto in process, plus what moto lacks.

moto runs Secrets Manager, ACM, Private CA, SSM and DynamoDB in process, but cannot invoke a
rotation Lambda, signs ACM private certificates with a fake issuer, has no RenewCertificate and no
SSM inventory, runs no SSM command, and is laxer than the services in places (Private CA's
validity and refusals, SendCommand to unmanaged nodes, DynamoDB's atomicity and table deletion,
allowed patterns); it never throttles and pages ListSecrets at quadratic cost. Each module fills
one such gap as the service behaves, with its source cited, and only where a test, the demo, the
sandbox or a benchmark needs it. It needs the ``demo`` extra (moto).
"""
