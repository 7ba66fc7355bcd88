from tests.support.driver import rotate, secret_fields, stages

def test_pca(aws, root_ca, make_secret):
    arn = make_secret({"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": root_ca, "COMMON_NAME": "app.example.internal"})
    token = rotate(arn)
    st = stages(aws.sm, arn)
    assert "AWSCURRENT" in st[token]
    f = secret_fields(aws.sm, arn)
    print(dict(aws.calls))
    assert f["CERTIFICATE_SERIAL"]

def test_acm(aws, root_ca, acm_chain, make_secret):
    arn = make_secret({"CERTIFICATE_TYPE": "ACM_ISSUED", "CA_ARN": root_ca, "COMMON_NAME": "app.example.internal", "ENVIRONMENT": "TEST"})
    t1 = rotate(arn)
    f1 = secret_fields(aws.sm, arn)
    t2 = rotate(arn)
    f2 = secret_fields(aws.sm, arn)
    assert f1["CERTIFICATE_SERIAL"] != f2["CERTIFICATE_SERIAL"]
    assert f1["CERTIFICATE_ARN"] == f2["CERTIFICATE_ARN"]
    assert acm_chain["count"] == 1
