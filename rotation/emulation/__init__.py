"""Local AWS for the demo, the benchmarks and the tests: moto in process, plus what moto lacks.

moto runs Secrets Manager, ACM and Private CA in process but cannot invoke a rotation Lambda,
signs ACM private certificates with a fake issuer, and has no RenewCertificate. This package
fills exactly those gaps (see each module) and nothing else. It needs the ``demo`` extra (moto).
"""
