//! Detection and masking tests: per kind, per lesson of the seed (../shared/spec/seed-lessons.md), on the seed's
//! samples, and properties. One test binary for the whole engine.

use std::collections::HashMap;

use maskgate_engine::{Detector, DetectorConfig, KeyContext, Masked, Masker, MaskerConfig, Plan};
use proptest::prelude::*;

fn found(d: &Detector, text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    d.find(text.as_bytes(), KeyContext::default(), &mut out);
    out.iter()
        .map(|f| (d.kind(f.kind).name.clone(), text[f.start..f.end].to_string()))
        .collect()
}

fn det() -> Detector {
    Detector::default()
}

/// A vault stand-in for engine tests: numbers per (tenant-less) prefix, stable per original.
#[derive(Default)]
struct Numbering {
    by_value: HashMap<(String, String), String>,
    counters: HashMap<String, u64>,
}

impl Numbering {
    fn finish(&mut self, plan: Plan) -> Masked {
        let ph: Vec<String> = plan
            .entries()
            .iter()
            .map(|e| {
                let key = (e.prefix.to_string(), e.original.to_string());
                if let Some(p) = self.by_value.get(&key) {
                    return p.clone();
                }
                let n = self.counters.entry(e.prefix.to_string()).or_insert(0);
                *n += 1;
                let p = maskgate_engine::placeholder::format(e.prefix, *n);
                self.by_value.insert(key, p.clone());
                p
            })
            .collect();
        plan.finish(&ph).expect("finish")
    }
}

fn mask_text(text: &str) -> Masked {
    let m = Masker::new(&MaskerConfig::default()).unwrap();
    Numbering::default().finish(m.plan_text(text))
}

fn mask_json(body: &str) -> Masked {
    let m = Masker::new(&MaskerConfig::default()).unwrap();
    Numbering::default().finish(m.plan_json(body.as_bytes()).expect("valid json"))
}

/// Masks `text`, checks that unmasking the output with the request's map gives `text` back, and returns the
/// output.
fn mask_round_trip(text: &str) -> String {
    let m = mask_text(text);
    let out = String::from_utf8(m.body).unwrap();
    let mut st = maskgate_engine::UnmaskStats::default();
    assert_eq!(maskgate_engine::unmask_text(&out, &m.map, &mut st), text, "via {out}");
    out
}

/// `(input, [(kind, value)])`: what must be found, exactly.
const POSITIVE: &[(&str, &[(&str, &str)])] = &[
    // Credentials and principals
    ("key AKIAIOSFODNN7EXAMPLE here", &[("access_key", "AKIAIOSFODNN7EXAMPLE")]),
    ("sts ASIAIOSFODNN7EXAMPLE", &[("access_key", "ASIAIOSFODNN7EXAMPLE")]),
    ("AKIAI44QH8DHBEXAMPLE,", &[("access_key", "AKIAI44QH8DHBEXAMPLE")]),
    ("user AIDACKCEVSQ6C2EXAMPLE", &[("iam_unique_id", "AIDACKCEVSQ6C2EXAMPLE")]),
    ("AROADBQP57FF2AEXAMPLE:app1", &[("iam_unique_id", "AROADBQP57FF2AEXAMPLE:app1")]),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", &[("secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")]),
    ("\"SecretAccessKey\": \"je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY\"", &[("secret_key", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")]),
    ("token FwoGZXIvYXdzEBaDOEXAMPLETOKEN123", &[("session_token", "FwoGZXIvYXdzEBaDOEXAMPLETOKEN123")]),
    ("IQoJb3JpZ2luX2VjEOzabcdefghijklmnopqrstuvwxyz0123456789", &[("session_token", "IQoJb3JpZ2luX2VjEOzabcdefghijklmnopqrstuvwxyz0123456789")]),
    ("https://bkt.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=abc123",
        &[("s3_bucket", "bkt"), ("presigned_credential", "AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"), ("presigned_credential", "abc123")]),
    ("appsync da2-abcdefghijklmnopqrstuvwxyz", &[("appsync_api_key", "da2-abcdefghijklmnopqrstuvwxyz")]),
    // Account and organization
    ("Account ID 123456789012 may be compromised", &[("account_id", "123456789012")]),
    ("--owner-ids 123456789012 210987654321", &[("account_id", "123456789012"), ("account_id", "210987654321")]),
    ("\"AWS\": \"123456789012\"", &[("account_id", "123456789012")]),
    ("owner account 1234-5678-9012", &[("account_id", "1234-5678-9012")]),
    ("org o-a1b2c3d4e5 root r-ab12 ou ou-ab12-cd34ef56", &[("org_id", "o-a1b2c3d4e5"), ("org_root", "r-ab12"), ("org_unit", "ou-ab12-cd34ef56")]),
    ("Owner ID 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be", &[("canonical_user_id", "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be")]),
    // ARNs, every partition
    ("arn:aws:iam::123456789012:role/Test-Role.", &[("iam_role_arn", "arn:aws:iam::123456789012:role/Test-Role")]),
    ("arn:aws-cn:s3:::my-bucket/key", &[("s3_arn", "arn:aws-cn:s3:::my-bucket/key")]),
    ("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f", &[("lambda_arn", "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f")]),
    ("arn:aws-iso:ec2:us-iso-east-1:123456789012:instance/i-1", &[("ec2_arn", "arn:aws-iso:ec2:us-iso-east-1:123456789012:instance/i-1")]),
    ("arn:aws-iso-b:s3:::b1", &[("s3_arn", "arn:aws-iso-b:s3:::b1")]),
    ("arn:aws-iso-e:sqs:eu-isoe-west-1:123456789012:q", &[("sqs_queue_arn", "arn:aws-iso-e:sqs:eu-isoe-west-1:123456789012:q")]),
    ("arn:aws-iso-f:sns:us-isof-south-1:123456789012:t", &[("sns_topic_arn", "arn:aws-iso-f:sns:us-isof-south-1:123456789012:t")]),
    ("arn:aws-eusc:kms:eusc-de-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", &[("kms_key_arn", "arn:aws-eusc:kms:eusc-de-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")]),
    ("arn:aws:sts::123456789012:assumed-role/Admin/jane@example.com", &[("iam_assumed_role_arn", "arn:aws:sts::123456789012:assumed-role/Admin/jane@example.com")]),
    ("q=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FMyRole&x=1", &[("iam_role_arn", "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FMyRole")]),
    // Resource ids: 8 and 17 hex, every common prefix
    ("i-1a2b3c4d and i-1234567890abcdef0", &[("ec2_instance", "i-1a2b3c4d"), ("ec2_instance", "i-1234567890abcdef0")]),
    ("ami-0abcdef1234567890 vpc-0a1b2c3d4e5f67890 subnet-12345678", &[("ami", "ami-0abcdef1234567890"), ("vpc", "vpc-0a1b2c3d4e5f67890"), ("subnet", "subnet-12345678")]),
    ("sg-903004f8 igw-0123456789abcdef0 fs-0123456789abcdef0", &[("security_group", "sg-903004f8"), ("internet_gateway", "igw-0123456789abcdef0"), ("efs_filesystem", "fs-0123456789abcdef0")]),
    ("tgw-attach-0123456789abcdef0 eni-attach-12345678 vpce-svc-0123456789abcdef0", &[("tgw_attachment", "tgw-attach-0123456789abcdef0"), ("eni_attachment", "eni-attach-12345678"), ("vpc_endpoint_service", "vpce-svc-0123456789abcdef0")]),
    ("mw-0c50858d01EXAMPLE mi-0123456789abcdef0 oi-1a2b3c4d5e6f", &[("ssm_managed_instance", "mi-0123456789abcdef0"), ("ssm_resource", "oi-1a2b3c4d5e6f")]),
    ("vpc-0065acced4EXAMPLE", &[("vpc", "vpc-0065acced4EXAMPLE")]),
    ("mrk-1234abcd12ab34cd56ef1234567890ab", &[("kms_key_id", "mrk-1234abcd12ab34cd56ef1234567890ab")]),
    ("--key-id 1234abcd-12ab-34cd-56ef-1234567890ab", &[("kms_key_id", "1234abcd-12ab-34cd-56ef-1234567890ab")]),
    ("alias/ExampleAlias", &[("kms_alias", "alias/ExampleAlias")]),
    ("j-2AXXXXXXGAPLF dxcon-fgktov66 d-1234567890", &[("emr_cluster", "j-2AXXXXXXGAPLF"), ("directconnect_id", "dxcon-fgktov66"), ("directory_id", "d-1234567890")]),
    // Ids whose random part happens to be letters only (the documentation's own examples).
    ("\"o-exampleorgid\" dxcon-fguhmqlc j-XXXXXXXX ns-pocfyjtrsmwtvcxx p-FullAWSAccess", &[("org_id", "o-exampleorgid"), ("directconnect_id", "dxcon-fguhmqlc"), ("emr_cluster", "j-XXXXXXXX"), ("cloudmap_id", "ns-pocfyjtrsmwtvcxx"), ("org_policy", "p-FullAWSAccess")]),
    // Ids inside the names AWS builds from them.
    ("com.amazonaws.vpce.us-east-1.vpce-svc-123123a1c43abc123 awseb-e-qu3fyyjyjs-stack-AWSEBAutoScalingGroup-QSB2ZO88SXZT", &[("vpc_endpoint_service", "vpce-svc-123123a1c43abc123"), ("beanstalk_env", "e-qu3fyyjyjs")]),
    // `r-` and 32 hex digits (WorkMail resources): no reservation, but the organization-root rule's shape.
    ("--resource-id r-7afe0efbade843a58cdc10251fce992c", &[("org_root", "r-7afe0efbade843a58cdc10251fce992c")]),
    // Credentials inside a larger token.
    ("creds-AKIAIOSFODNN7EXAMPLE.txt and x.ASIAIOSFODNN7EXAMPLE and cluster-endpoint-ANPAJ4AE5446DAEXAMPLE", &[("access_key", "AKIAIOSFODNN7EXAMPLE"), ("access_key", "ASIAIOSFODNN7EXAMPLE"), ("iam_unique_id", "ANPAJ4AE5446DAEXAMPLE")]),
    ("pool us-east-1_EXAMPLE12 ids us-east-1:1cf667a2-49a6-454b-9e45-23199EXAMPLE", &[("cognito_user_pool", "us-east-1_EXAMPLE12"), ("cognito_identity_pool", "us-east-1:1cf667a2-49a6-454b-9e45-23199EXAMPLE")]),
    // S3
    ("s3://amzn-s3-demo-bucket/test2.txt", &[("s3_bucket", "amzn-s3-demo-bucket")]),
    ("amzn-s3-demo-bucket.s3.us-west-2.amazonaws.com", &[("s3_bucket", "amzn-s3-demo-bucket")]),
    ("https://s3.us-west-2.amazonaws.com/amzn-s3-demo-bucket/key", &[("s3_bucket", "amzn-s3-demo-bucket")]),
    // Endpoints
    ("mydb.cx1llnox7iyx.us-west-2.rds.amazonaws.com:5432", &[("rds_endpoint", "mydb.cx1llnox7iyx.us-west-2.rds.amazonaws.com")]),
    ("my-redis.7abc2d.0001.usw2.cache.amazonaws.com", &[("elasticache_endpoint", "my-redis.7abc2d.0001.usw2.cache.amazonaws.com")]),
    ("examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com", &[("redshift_endpoint", "examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com")]),
    ("my-load-balancer-1234567890.us-west-2.elb.amazonaws.com", &[("elb_dns", "my-load-balancer-1234567890.us-west-2.elb.amazonaws.com")]),
    ("https://A0DCCD80A04F01705DD065655C30CC3D.yl4.us-west-2.eks.amazonaws.com", &[("eks_endpoint", "A0DCCD80A04F01705DD065655C30CC3D.yl4.us-west-2.eks.amazonaws.com")]),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/project-a/nginx:latest", &[("ecr_uri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/project-a/nginx:latest")]),
    ("https://a1b2c3d4e5.execute-api.us-west-2.amazonaws.com/prod", &[("apigw_endpoint", "a1b2c3d4e5.execute-api.us-west-2.amazonaws.com")]),
    ("https://abcdefghijklmnopqrstuvwxyz123456.lambda-url.us-east-1.on.aws/", &[("lambda_url", "abcdefghijklmnopqrstuvwxyz123456.lambda-url.us-east-1.on.aws")]),
    ("d111111abcdef8.cloudfront.net", &[("cloudfront_domain", "d111111abcdef8.cloudfront.net")]),
    ("vpce-0f89a33420c1931d7-bluzidnv.elasticloadbalancing.us-east-1.vpce.amazonaws.com", &[("vpce_dns", "vpce-0f89a33420c1931d7-bluzidnv.elasticloadbalancing.us-east-1.vpce.amazonaws.com")]),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/MyQueue.fifo", &[("sqs_queue_url", "https://sqs.us-east-1.amazonaws.com/123456789012/MyQueue.fifo")]),
    ("ec2-203-0-113-25.compute-1.amazonaws.com", &[("ec2_hostname", "ec2-203-0-113-25.compute-1.amazonaws.com")]),
    ("ip-10-0-0-157.us-east-2.compute.internal root@ip-10-0-1-17:~$", &[("ec2_hostname", "ip-10-0-0-157.us-east-2.compute.internal"), ("ec2_hostname", "ip-10-0-1-17")]),
    ("my-env.us-west-2.elasticbeanstalk.com", &[("beanstalk_host", "my-env.us-west-2.elasticbeanstalk.com")]),
    // Network
    ("10.0.1.17, 172.31.16.0/20 and 192.168.0.0/16; 100.64.0.1", &[("private_ip", "10.0.1.17"), ("private_ip", "172.31.16.0/20"), ("private_ip", "192.168.0.0/16"), ("private_ip", "100.64.0.1")]),
    ("EIP 203.0.113.25 and 54.239.28.85.", &[("public_ip", "203.0.113.25"), ("public_ip", "54.239.28.85")]),
    ("2600:1f18:47d3:8c00::/56 and [2001:db8::1]:443", &[("ipv6", "2600:1f18:47d3:8c00::/56"), ("ipv6", "2001:db8::1")]),
    ("\"MacAddress\": \"02:58:f5:ef:4b:06\"", &[("mac_address", "02:58:f5:ef:4b:06")]),
    ("--hosted-zone-id Z1D633PJN98FT9 and /hostedzone/Z3M3LMPEXAMPLE1", &[("hosted_zone_id", "Z1D633PJN98FT9"), ("hosted_zone_id", "Z3M3LMPEXAMPLE1")]),
    ("CloudFront distribution EDFDVBD6EXAMPLE", &[("cloudfront_distribution_id", "EDFDVBD6EXAMPLE")]),
    ("--rest-api-id a1b2c3d4e5", &[("apigw_id", "a1b2c3d4e5")]),
    // After its flag or key an API id may be all digits or all letters (the AWS CLI pages use `1234123412`).
    ("aws apigateway get-stages --rest-api-id 1234123412", &[("apigw_id", "1234123412")]),
    ("\"restApiId\": \"1234123412\", \"ApiId\": \"aabbccddee\"", &[("apigw_id", "1234123412"), ("apigw_id", "aabbccddee")]),
    // JSON (or a Python dictionary) pasted as text: a quoted key, then `:`.
    ("{\"FunctionName\": \"my-function\", \"DBInstanceIdentifier\": \"database-1\"}", &[("lambda_function", "my-function"), ("rds_instance", "database-1")]),
    ("{'RoleName': 'deploy', 'BucketName': 'my-data-bucket'}", &[("iam_role_name", "deploy"), ("s3_bucket", "my-data-bucket")]),
    ("\"CatalogId\": \"007436865787\", \"MemberAccounts\": [\n    \"222222222222\",\n    \"333333333333\"\n]", &[("account_id", "007436865787"), ("account_id", "222222222222"), ("account_id", "333333333333")]),
    // A list after its key, one item per line; the next key of an object is no item.
    ("\"AccountIds\": [\n    \"123456789011\",\n    \"123456789013\"\n]", &[("account_id", "123456789011"), ("account_id", "123456789013")]),
    ("the buckets \"logs-bucket-1\", \"logs-bucket-2\"", &[("s3_bucket", "logs-bucket-1"), ("s3_bucket", "logs-bucket-2")]),
    ("{\"FunctionName\": \"my-function\", \"next-key-1\": \"x\"}", &[("lambda_function", "my-function")]),
    // A UUID after a name's key is that name (a Cognito user): no pattern takes it, so the key does.
    ("\"Username\": \"4320de44-2322-4620-999b-5e2e1c8df013\"", &[("iam_user_name", "4320de44-2322-4620-999b-5e2e1c8df013")]),
    // A UUID after a region and `:` is a Cognito identity pool, also in capitals; after another key, nothing.
    ("us-east-1:ABCDEF12-3456-7890-ABCD-EFABCDEFABCD request_id=1234abcd-12ab-34cd-56ef-1234567890ab", &[("cognito_identity_pool", "us-east-1:ABCDEF12-3456-7890-ABCD-EFABCDEFABCD")]),
    // Canonical user ids in S3 grants.
    ("--grant-full-control id=79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be", &[("canonical_user_id", "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be")]),
    // Names with context
    ("aws s3 ls --bucket my-prod-bucket", &[("s3_bucket", "my-prod-bucket")]),
    ("aws lambda invoke --function-name my-function out.json", &[("lambda_function", "my-function")]),
    ("S3 bucket my-test-bucket-12345 and RDS instance prod-db-master", &[("s3_bucket", "my-test-bucket-12345"), ("rds_instance", "prod-db-master")]),
    ("buckets: my-production-data-bucket and my-backup-data-bucket", &[("s3_bucket", "my-production-data-bucket"), ("s3_bucket", "my-backup-data-bucket")]),
    ("/aws/lambda/my-function", &[("log_group", "/aws/lambda/my-function")]),
    // An account keyword after the value, on the same line.
    ("in 123456789012 (prod account)", &[("account_id", "123456789012")]),
    ("123456789012 is our AWS account", &[("account_id", "123456789012")]),
    // ARNs whose region or partition is a placeholder or a template: the account field is still an account id.
    ("arn:aws:ecs:region:123456789012:cluster/prod", &[("account_id", "123456789012")]),
    ("Resource: arn:aws:kms:${AWS::Region}:123456789012:key/x", &[("account_id", "123456789012")]),
    ("arn:aws:kms:region:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", &[("account_id", "111122223333"), ("kms_key_id", "1234abcd-12ab-34cd-56ef-1234567890ab")]),
    ("arn:aws:ec2:<region>:123456789012:instance/i-1234567890abcdef0", &[("account_id", "123456789012"), ("ec2_instance", "i-1234567890abcdef0")]),
    ("\"arn:aws:logs:<region>:210987654321:log-group:app\"", &[("account_id", "210987654321")]),
    ("arn:${AWS::Partition}:lambda:us-east-1:123456789012:function:f", &[("account_id", "123456789012")]),
    ("\"Resource\": \"arn:aws:logs:*:123456789012:log-group:*\"", &[("account_id", "123456789012")]),
    // Placeholder-shaped text typed into a request
    ("see AWS_EC2_001 please", &[("placeholder_literal", "AWS_EC2_001")]),
    // Korean text escaped as JSON (`\uXXXX`) around an id.
    ("\\uc778\\uc2a4\\ud134\\uc2a4 i-1234567890abcdef0\\uc5d0\\uc11c", &[("ec2_instance", "i-1234567890abcdef0")]),
    // Korean text around identifiers
    ("AWS instance i-1234567890abcdef0에서 VPC vpc-12345678에서", &[("ec2_instance", "i-1234567890abcdef0"), ("vpc", "vpc-12345678")]),
];

#[test]
fn positives() {
    let d = det();
    let mut failures = Vec::new();
    for (input, want) in POSITIVE {
        let got = found(&d, input);
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if got != want {
            failures.push(format!("{input}\n   want {want:?}\n   got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Ordinary lines that must come through untouched.
const NEGATIVE: &[&str] = &[
    "Please give feedback on the sandbox handbook for mongodb; see blogs and dialogs.",
    "use std::collections::HashMap; let v = Vec::new(); time 10:30:45; docker run -p 8000:8000 node:20; 127.0.0.1:8080",
    "Kong 3.9.0.1 and python 3.11.4.2; timestamp 1721800000000",
    "MAC 00:1a:2b:3c:4d:5e and a[1:2] and {1:2}",
    "see github.com/aws/aws-cli and https://github.com/aws/aws-sdk-go-v2/tree/main/service",
    "the nodb-cluster and analytics-cluster and redis-cluster",
    "cache_control ephemeral; elasticache memcache no-cache",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b (HEAD -> main)",
    "request id 550e8400-e29b-41d4-a716-446655440000 failed",
    "2024-01-15T10:30:45.123Z INFO request took 123456789012 ns",
    "call +1 415 555 0132 or 202-555-0187; order 123456789012 shipped",
    "version 1.2.3.4 and v10.0.19041.1 and 10.256.0.1 and 1.3.6.1.4.1.311",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "{\n  \"Id\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\n  \"Name\": \"folder\"\n}",
    "call 1234123412 or restart at 1234123412; the word abcdefghij",
    "{\"Kubernetes\": \"stable\", \"Name\": \"web-1\", 'Version': '1.2.3'}",
    "--criteria '{\"bucketName\":{\"prefix\":\"logs\"}}'",
    "aws rds describe-db-instances; aws dynamodb get-item; aws elasticache describe-cache-clusters; aws redshift create-cluster",
    "\"Numbers\": [\n    \"123456789011\",\n    \"123456789013\"\n]",
    "i-xyz instance-123 invalid-instance i-",
    "the e-commerce p-value h-index o-ring r-squared pre-process",
    "a well-known key-value pair; nat-gateway vpc-peering subnet-cidr fs-extra ami-store",
    "fn main() { let x: u64 = 0x1234_5678; println!(\"{x}\"); }",
    "kubernetes javascript everything something",
    "dates 2023-06-15 2024-01-01, 12:34:56, 1234-5678",
    "public endpoints ec2.us-east-1.amazonaws.com sts.amazonaws.com s3.amazonaws.com bedrock-runtime.us-east-1.amazonaws.com",
    "DNS 8.8.8.8 and 1.1.1.1, link-local 169.254.169.254, any 0.0.0.0/0",
    "AWS_EC2_001x xAWS_EC2_001 AWS_EC2_01",
    // Twelve digits between colons without `arn:` at a word start before them, or not exactly twelve.
    "warn:x:123456789012: and yarn:run:123456789012 and arn:aws:ecs:region:1234567890123:x",
    "arn:aws:ecs:${AWS::Region} then :123456789012:x",
    // Content digests under an owner a line above (a container image in pasted JSON).
    "{\n  \"owner\": \"alice\",\n  \"image\": \"nginx@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\n  \"digest\": \"SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n}",
    // Twelve digits with an account keyword on the next line, or beyond the window after.
    "order 123456789012 shipped\nto the account of the customer",
    "ticket 210987654321 was opened by the support team for the account",
    // Words after the prefixes of ids that may be letters only.
    "o-completion p-worktree p-portability r-squared j-unit ns-record",
];

#[test]
fn negatives() {
    let d = det();
    let mut failures = Vec::new();
    for line in NEGATIVE {
        let got = found(&d, line);
        if !got.is_empty() {
            failures.push(format!("{line}\n   got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// One test per Detection item of seed-lessons.md -------------------------------------------------------------

/// JSON output of the AWS CLI pasted into a prompt: the key that says what a canonical user id or a CloudFront
/// id is names the object around it, lines above the value (`aws s3api get-bucket-acl`,
/// `aws cloudfront get-distribution`).
#[test]
fn pasted_cli_output_names_the_object_lines_above() {
    let d = det();
    let acl = r#"{
    "Owner": {
        "DisplayName": "my-username",
        "ID": "7009a8971cd538e11f6b6606438875e7c86c5b672f46db45460ddcd087d36c32"
    },
    "Grants": [
        {
            "Grantee": {
                "DisplayName": "other-user",
                "ID": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
                "Type": "CanonicalUser"
            },
            "Permission": "FULL_CONTROL"
        }
    ]
}"#;
    assert_eq!(
        found(&d, acl),
        [
            "7009a8971cd538e11f6b6606438875e7c86c5b672f46db45460ddcd087d36c32",
            "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
        ]
        .map(|v| ("canonical_user_id".to_string(), v.to_string()))
    );
    let dist = r#"{
    "Distribution": {
        "Id": "EDFDVBD6EXAMPLE",
        "Status": "Deployed""#;
    assert_eq!(
        found(&d, dist),
        [("cloudfront_distribution_id".to_string(), "EDFDVBD6EXAMPLE".to_string())]
    );
    // Too far above (more than 256 bytes), or not the object's name: a digest stays.
    let far = format!(
        "\"Owner\": \"me\",\n{}\"Digest\": \"{}\"",
        "    \"Padding\": \"x\",\n".repeat(12),
        "ab".repeat(32)
    );
    assert_eq!(found(&d, &far), []);
}

/// OpenAI tool-call arguments are a JSON document inside a JSON string: its keys are quoted keys of the decoded
/// text (the session-8 engine sent `billing-sync` and `acme-invoices` upstream as they were).
#[test]
fn tool_call_arguments_are_json_in_a_string() {
    let body = r#"{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"invoke","arguments":"{\"FunctionName\": \"billing-sync\", \"Bucket\": \"acme-invoices\"}"}}]}]}"#;
    let masked = mask_json(body);
    let out = String::from_utf8(masked.body).unwrap();
    assert!(
        out.contains(r#"{\"FunctionName\": \"AWS_LAMBDA_FUNCTION_001\", \"Bucket\": \"AWS_S3_BUCKET_001\"}"#),
        "{out}"
    );
    assert!(!out.contains("billing-sync") && !out.contains("acme-invoices"), "{out}");
}

#[test]
fn lesson_quantifiers_work_for_kms_route53_cloudfront_elasticache() {
    let d = det();
    assert_eq!(
        found(&d, "KMS key 1234abcd-12ab-34cd-56ef-1234567890ab")[0].0,
        "kms_key_id"
    );
    assert_eq!(found(&d, "HostedZoneId: Z1D633PJN98FT9")[0].0, "hosted_zone_id");
    assert_eq!(
        found(&d, "DistributionId=E1234567890ABC")[0].0,
        "cloudfront_distribution_id"
    );
    assert_eq!(
        found(&d, "my-redis.7abc2d.0001.usw2.cache.amazonaws.com")[0].0,
        "elasticache_endpoint"
    );
}

#[test]
fn lesson_lengths_8_and_17_hex_masked_whole() {
    for id in [
        "vpc-0123456789abcdef0",
        "sg-0123456789abcdef0",
        "ami-0123456789abcdef0",
        "igw-0123456789abcdef0",
        "fs-0123456789abcdef0",
        "subnet-12345678",
    ] {
        let m = mask_text(&format!("id {id} end"));
        let out = String::from_utf8(m.body).unwrap();
        assert!(!out.contains(&id[id.len() - 6..]), "{id} partly leaked: {out}");
        assert_eq!(m.map.len(), 1, "{out}");
    }
}

#[test]
fn lesson_no_match_inside_larger_tokens() {
    let out = String::from_utf8(mask_text("AMI ami-0abcdef1234567890 and my-subnet-1a2b3c4d-x").body).unwrap();
    assert_eq!(out, "AMI AWS_AMI_001 and my-subnet-1a2b3c4d-x");
    assert!(found(
        &det(),
        "feedback sandbox elasticloadbalancing redis-cluster blogs logs db"
    )
    .is_empty());
}

#[test]
fn lesson_one_pass_arn_wins_and_no_ipv6_in_code() {
    let d = det();
    assert_eq!(
        found(&d, "arn:aws:iam::123456789012:role/x"),
        [("iam_role_arn".into(), "arn:aws:iam::123456789012:role/x".into())]
    );
    assert!(found(&d, "std::collections::HashMap and fe80::1 and dead::beef").is_empty());
    assert!(found(&d, "at 20240115103045123456 and 1721800000000123").is_empty());
}

#[test]
fn lesson_private_ips_real_secrets_asia_keys_session_tokens() {
    let d = det();
    let kinds: Vec<String> = found(
        &d,
        "10.1.2.3 ASIAY34FZKBOKMUTVV7A aws_secret_access_key=Zx8kP2mQ9vL4nR7tY1wE3uI6oA5sD0fG8hJ2kL9z AQoDYXdzEJr1234567890abcdefghij",
    )
    .into_iter()
    .map(|(k, _)| k)
    .collect();
    assert_eq!(kinds, ["private_ip", "access_key", "secret_key", "session_token"]);
}

/// A credential's pattern stops at the first byte outside its alphabet; the word bytes glued after it go into the
/// placeholder's span, else they would stay glued to it (`AWS_BEDROCK_KEY_001_na_me`), which then would not read
/// as a placeholder and the original would not come back. Found by the `detect` fuzzer.
#[test]
fn credentials_glued_to_word_bytes_round_trip() {
    let key = format!("ABSK{}", "A".repeat(120));
    let token = format!("IQoJb3JpZ2luX2Vj{}", "B".repeat(40));
    let text = format!("k={key}_na_meAAAA then {token}_tail and {key}==_x.");
    let out = mask_round_trip(&text);
    assert_eq!(
        out,
        "k=AWS_BEDROCK_KEY_001 then AWS_SESSION_TOKEN_001 and AWS_BEDROCK_KEY_002."
    );
}

/// URL-encoded text: an identifier right after a percent-escape of a separator (`%3D` `=`, `%2F` `/`, `%22` `"`,
/// `%20` ` `) is masked, though the escape's last hex digit glues it to a word. The placeholder takes the
/// escape's two digits, so that it stands alone after the `%` and comes back. An escape of a word byte (`%41`,
/// `A`) or of a `-` (`%2D`: the id is part of a name) is no boundary.
#[test]
fn ids_after_escapes_are_masked() {
    let text = "q=key%3DAKIAIOSFODNN7EXAMPLE%2F20240101 r=%22arn:aws:iam::123456789012:role/x%22 \
                p=%2Fvpc-0a1b2c3d&i=%20i-0123456789abcdef0%20 ip=%2010.1.2.3%20 \
                keep my%2Dsubnet-1a2b3c4d %41i-0123456789abcdef1 100%25 %3DAWS_EC2_001";
    let out = mask_round_trip(text);
    assert_eq!(
        out,
        "q=key%AWS_ACCESS_KEY_001%2F20240101 r=%AWS_IAM_ROLE_001 \
         p=%AWS_VPC_001&i=%AWS_EC2_001%20 ip=%AWS_PRIVATE_IP_001%20 \
         keep my%2Dsubnet-1a2b3c4d %41i-0123456789abcdef1 100%25 %3DAWS_EC2_001"
    );
    // The same ids in an encoded ARN's parts are the ARN's (no second finding inside it).
    let out = mask_round_trip(
        "u=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fx and role%3Darn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fy",
    );
    assert_eq!(out, "u=AWS_IAM_ROLE_001 and role%AWS_IAM_ROLE_002");
    // Encoded twice (`%252F`), and the AWS console's `$252F`.
    let out = mask_round_trip("r=https%3A%2F%2Fx%3Fp%3D%252Fi-0123456789abcdef0 logs $252Fvpc-0a1b2c3d 50%2525");
    assert_eq!(out, "r=https%3A%2F%2Fx%3Fp%3D%AWS_EC2_001 logs $AWS_VPC_001 50%2525");
    // JSON's `\uXXXX` (and C's `\xHH`) escapes spelled out in text (a JSON document pasted into a prompt): the placeholder takes
    // the escape's `uXXXX` and stands alone after the `\`. A non-ASCII character is a separator, as in the text.
    let text = concat!(
        r"a \u0022arn:aws:iam::123456789012:role/x\u0022 b \u003di-0123456789abcdef0 ",
        r"c \u0026AKIAIOSFODNN7EXAMPLE x\u00e9i-0123456789abcdef1 ",
        r"keep \u0041i-0123456789abcdef2 \u002di-0123456789abcdef3 \u0022AWS_EC2_001 ",
        r"and C's \x3dvpc-0a1b2c3d \x41vpc-0a1b2c3e"
    );
    assert_eq!(
        mask_round_trip(text),
        concat!(
            r"a \AWS_IAM_ROLE_001\u0022 b \AWS_EC2_001 ",
            r"c \AWS_ACCESS_KEY_001 x\AWS_EC2_002 ",
            r"keep \u0041i-0123456789abcdef2 \u002di-0123456789abcdef3 \u0022AWS_EC2_001 ",
            r"and C's \AWS_VPC_001 \x41vpc-0a1b2c3e"
        )
    );
}

/// An ARN after a `:` is a value (`Resource:arn:aws:s3:::bucket` in a `key:value` log); the catalogue's own
/// regex excluded it, and the bucket name went out.
#[test]
fn arns_after_a_colon_are_masked() {
    let out = mask_round_trip("Resource:arn:aws:s3:::my-bucket-1 principal:arn:aws:iam::123456789012:role/x");
    assert_eq!(out, "Resource:AWS_S3_ARN_001 principal:AWS_IAM_ROLE_001");
}

/// Every pattern-tier identifier is masked whatever separator, punctuation, escape or non-ASCII text is glued to
/// it, on either side (each case on its own, so that no other line's finding carries it), and comes back.
#[test]
fn ids_are_masked_in_every_context() {
    let ids = [
        "i-0123456789abcdef0",
        "vpc-0a1b2c3d",
        "AKIAIOSFODNN7EXAMPLE",
        "arn:aws:iam::123456789012:role/app",
        "10.1.2.3",
        "arn:aws:s3:::bkt-1a2b3c",
        "db1.c0123456789a.us-east-1.rds.amazonaws.com",
        "ami-0abcdef1234567890",
        "2600:1f18:47d3:8c00::5a",
        "IQoJb3JpZ2luX2VjEOzABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJ",
    ];
    let left = [
        " ", "=", "\"", "'", "(", "[", "{", "<", ">", "/", ",", ";", "|", "\t", r"\n", r#"\""#, "%3D", "%22", "%2F",
        "%20", r"\u0022", r"\x22", "&quot;", "&#34;", "$", "@", "#", "*", "~", "!", "?", "&", "+", "`", "=>", "->",
        "«", "“", "한", "é", "%252F", "$252F", "%5C%22", r"\\u0022", r"\/", r"\\", r"\t",
    ];
    let right = [
        " ", "\"", "'", ")", "]", "}", ",", ";", ".", ":", "|", r"\n", r#"\""#, "%22", "%2C", "%2F", "&quot;", "`",
        "!", "?", ">", "*", "한", "。", r"\u0022", r"\x22", "%252F",
    ];
    let m = Masker::new(&MaskerConfig::default()).unwrap();
    let mut missed = Vec::new();
    for id in ids {
        let cases = left
            .iter()
            .map(|l| format!("w {l}{id} w"))
            .chain(right.iter().map(|r| format!("w {id}{r} w")));
        for text in cases {
            let masked = Numbering::default().finish(m.plan_text(&text));
            let out = String::from_utf8(masked.body).unwrap();
            if out.contains(id) {
                missed.push(text.clone());
            }
            let mut st = maskgate_engine::UnmaskStats::default();
            assert_eq!(
                maskgate_engine::unmask_text(&out, &masked.map, &mut st),
                text,
                "via {out}"
            );
        }
    }
    assert!(missed.is_empty(), "left unmasked: {missed:#?}");
}

/// An access key id and its secret as a URI's user info (Hadoop's `s3a://KEY:SECRET@bucket`, connection
/// strings): the secret is no token of its own there, so the pair is masked as one secret, its `/` encoded or not;
/// in an `s3://` URI the bucket after it too, and any other host is searched as text is (a private address).
#[test]
fn access_key_and_secret_in_a_uri_are_masked() {
    let text = "fs s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYEXAMPLEKEY@my-bucket/path \
                and s3a://AKIAI44QH8DHBEXAMPLE:je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY@bkt-2/p \
                https://ASIAI44QH8DHBEXAMPLE:je7MtGbClwBF%2B2Zp9Utk/h3yCo8nvbEXAMPLEKEY@10.0.0.5:9000/x";
    assert_eq!(
        mask_round_trip(text),
        "fs s3a://AWS_SECRET_KEY_001@AWS_S3_BUCKET_001/path \
                and s3a://AWS_SECRET_KEY_002@AWS_S3_BUCKET_002/p https://AWS_SECRET_KEY_003@AWS_PRIVATE_IP_001:9000/x"
    );
}

/// The parameters of a query string or a form body are keys and values inside one token, each ended by `&`.
#[test]
fn query_string_and_form_parameters_are_keys_and_values() {
    let text = "GET https://app.example.com/api?accountId=123456789012&region=us-east-1&bucket=my-data-1a2b3c4d \
                curl -d \"aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY&x=1\" ?a=1&b=2";
    assert_eq!(
        mask_round_trip(text),
        "GET https://app.example.com/api?accountId=AWS_ACCOUNT_001&region=us-east-1&bucket=AWS_S3_BUCKET_001 \
                curl -d \"aws_secret_access_key=AWS_SECRET_KEY_001&x=1\" ?a=1&b=2"
    );
}

#[test]
fn lesson_json_escapes_stay_valid() {
    let body =
        r#"{"messages":[{"role":"user","content":"Buckets:\nmy-app-bucket\ti-1234567890abcdef0\n\"vpc-12345678\""}]}"#;
    let m = mask_json(body);
    let v: serde_json::Value = serde_json::from_slice(&m.body).expect("masked body is valid JSON");
    let content = v["messages"][0]["content"].as_str().unwrap();
    assert_eq!(content, "Buckets:\nAWS_S3_BUCKET_001\tAWS_EC2_001\n\"AWS_VPC_001\"");
    // The same text as a text body keeps its escapes intact.
    let t = String::from_utf8(mask_text(r"Buckets:\nmy-app-bucket\ti-1234567890abcdef0").body).unwrap();
    assert_eq!(t, r"Buckets:\nAWS_S3_BUCKET_001\tAWS_EC2_001");
}

#[test]
fn lesson_large_bodies_are_masked() {
    let mut content = String::new();
    let mut n = 0;
    while content.len() < 1 << 20 {
        content.push_str(&format!(
            "instance i-{n:017x} in subnet subnet-{n:08x} with lots of padding text around it. "
        ));
        n += 1;
    }
    let body = serde_json::json!({"model": "claude", "messages": [{"role": "user", "content": content}]}).to_string();
    let m = mask_json(&body);
    let out = String::from_utf8(m.body).unwrap();
    assert!(!out.contains("i-0000"), "an instance id leaked");
    assert!(!out.contains("subnet-0"), "a subnet leaked");
    assert_eq!(m.map.len(), 2 * n);
}

// Masking ---------------------------------------------------------------------------------------------------

#[test]
fn same_value_same_placeholder_and_propagation() {
    let m =
        mask_text("account 123456789012 owns i-1234567890abcdef0; later 123456789012 and i-1234567890abcdef0 again");
    let out = String::from_utf8(m.body).unwrap();
    assert_eq!(
        out,
        "account AWS_ACCOUNT_001 owns AWS_EC2_001; later AWS_ACCOUNT_001 and AWS_EC2_001 again"
    );
    assert_eq!(m.counts.iter().find(|(k, _)| k == "account_id").unwrap().1, 2);
}

#[test]
fn json_keys_values_skip_paths() {
    let body = r#"{"model":"i-1234567890abcdef0","system":"vpc-12345678","messages":[{"role":"user","content":[
        {"type":"text","text":"sg-12345678"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"aS0xMjM0NTY3ODkwYWJjZGVmMA=="}},
        {"type":"tool_result","tool_use_id":"t1","content":"{\"OwnerId\":\"123456789012\"}"}]}],
        "tools":[{"name":"describe","description":"reads subnet-12345678","input_schema":{"type":"object","properties":{"i-1234567890abcdef0":{"type":"string"}}}}],
        "metadata":{"OwnerId":"210987654321","num":55555555555555555555555}}"#;
    let m = mask_json(body);
    let out = String::from_utf8(m.body.clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "i-1234567890abcdef0", "model is never masked");
    assert_eq!(v["system"], "AWS_VPC_001");
    assert_eq!(
        v["messages"][0]["content"][1]["source"]["data"],
        "aS0xMjM0NTY3ODkwYWJjZGVmMA=="
    );
    assert_eq!(
        v["messages"][0]["content"][2]["content"],
        "{\"OwnerId\":\"AWS_ACCOUNT_001\"}"
    );
    assert!(
        v["tools"][0]["input_schema"]["properties"].get("AWS_EC2_001").is_some(),
        "keys are masked: {out}"
    );
    assert_eq!(v["metadata"]["OwnerId"], "AWS_ACCOUNT_002");
    assert!(out.contains("55555555555555555555555"), "numbers keep their digits");
}

/// A JSON key that is not in the key table but holds its shape's keyword is the value's context, as the same
/// line pasted as text would be (botocore's examples: `InstanceOwnerId`, `MasterAccountId`, `DestinationKeyId`).
#[test]
fn json_keys_with_a_keyword_are_context() {
    let body = r#"{"InstanceOwnerId":"123456789012","MasterAccountId":"111111111111","awsAccountNumber":"123456789101",
        "Principal":"223456789012","DestinationKeyId":"0987dcba-09fe-87dc-65ba-ab0987654321",
        "CanonicalHostedZoneNameID":"Z3DZXE0EXAMPLE","Distribution":{"Id":"EDFDVBD6EXAMPLE"},
        "Owner":{"DisplayName":"me","ID":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},
        "Grantee":{"Type":"CanonicalUser","ID":"89a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},
        "Count":"123456789013","Name":"Z9ABCDE1FGHIJK","Build":"0987dcba-09fe-87dc-65ba-ab0987654322"}"#;
    let m = mask_json(body);
    let out = String::from_utf8(m.body.clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["InstanceOwnerId"], "AWS_ACCOUNT_001", "{out}");
    assert_eq!(v["MasterAccountId"], "AWS_ACCOUNT_002");
    assert_eq!(v["awsAccountNumber"], "AWS_ACCOUNT_003");
    assert_eq!(v["Principal"], "AWS_ACCOUNT_004");
    assert_eq!(v["DestinationKeyId"], "AWS_KMS_KEY_001");
    assert_eq!(v["CanonicalHostedZoneNameID"], "AWS_ROUTE53_ZONE_001");
    assert_eq!(v["Distribution"]["Id"], "AWS_CLOUDFRONT_ID_001");
    assert_eq!(v["Owner"]["ID"], "AWS_CANONICAL_USER_001");
    assert_eq!(v["Grantee"]["ID"], "AWS_CANONICAL_USER_002");
    // The same shapes under keys without their keyword stay: a count, a name, a build id.
    assert_eq!(v["Count"], "123456789013");
    assert_eq!(v["Name"], "Z9ABCDE1FGHIJK");
    assert_eq!(v["Build"], "0987dcba-09fe-87dc-65ba-ab0987654322");
}

/// AWS-managed names are masked by default like every other ARN and alias (fail closed); `keep_aws_managed`
/// lets them pass (public, and the model answers better knowing them).
#[test]
fn aws_managed_names_are_masked_unless_kept() {
    let text = "attach arn:aws:iam::aws:policy/AdministratorAccess, encrypt with alias/aws/s3 and alias/app-key";
    let masked = |cfg: &MaskerConfig| {
        let m = Masker::new(cfg).unwrap();
        String::from_utf8(Numbering::default().finish(m.plan_text(text)).body).unwrap()
    };
    assert_eq!(
        masked(&MaskerConfig::default()),
        "attach AWS_IAM_POLICY_001, encrypt with AWS_KMS_ALIAS_001 and AWS_KMS_ALIAS_002"
    );
    let keep = MaskerConfig {
        keep_aws_managed: true,
        ..Default::default()
    };
    assert_eq!(
        masked(&keep),
        "attach arn:aws:iam::aws:policy/AdministratorAccess, encrypt with alias/aws/s3 and AWS_KMS_ALIAS_001"
    );
}

/// An id right after a `\uXXXX` escape is not taken apart from it: a placeholder written there would touch the
/// escape's hex digits and not come back (found by the `detect` fuzzer when `visit` skipped such escapes).
#[test]
fn ids_after_unicode_escapes_round_trip() {
    for text in [
        "\\u0069ou-ab12-cd34ef56 and \\uc2a4i-1234567890abcdef0",
        "\\uc778\\uc2a4\\ud134\\uc2a4 i-1234567890abcdef0\\uc5d0\\uc11c",
    ] {
        mask_round_trip(text);
    }
}

/// The block scan's shortcut for a token that is only a `\\uXXXX` escape agrees with the byte-by-byte reference,
/// also where the name route could take it (the `detect` fuzzer's input, `fuzz/seeds/detect/unicode-escape-in-list.bin`).
#[test]
fn unicode_escape_tokens_scan_like_the_reference() {
    let d = det();
    let crash = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/seeds/detect/unicode-escape-in-list.bin"
    ))
    .unwrap();
    let crash = String::from_utf8_lossy(&crash[1..]).into_owned();
    for text in [
        crash.as_str(),
        "S3 bucket \\u0022",
        "buckets: my-logs-1, \\u00e9 and \\uc774",
        "\\uc774\\ubb38 i-1234567890abcdef0",
    ] {
        let (mut fast, mut reference) = (Vec::new(), Vec::new());
        d.find(text.as_bytes(), KeyContext::default(), &mut fast);
        d.find_reference(text.as_bytes(), KeyContext::default(), &mut reference);
        assert_eq!(fast, reference, "{text:?}");
    }
}

#[test]
fn invalid_json_is_refused() {
    let m = Masker::new(&MaskerConfig::default()).unwrap();
    for bad in [
        "{\"a\":",
        "{\"a\":\"i-1234567890abcdef0\"",
        "not json",
        "{\"a\":\"\\ud800\"}",
    ] {
        assert!(m.plan_json(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn config_disable_custom_allowlist() {
    let cfg = MaskerConfig {
        disabled_kinds: vec!["private_ip".into()],
        custom_patterns: vec![maskgate_engine::CustomPattern {
            name: "ticket".into(),
            regex: r"\bPROJ-[0-9]{4}\b".into(),
            prefix: "AWS_TICKET".into(),
        }],
        allowlist: vec!["i-0000000000000000a".into()],
        skip_paths: None,
        keep_aws_managed: false,
    };
    let m = Masker::new(&cfg).unwrap();
    let masked = Numbering::default().finish(m.plan_text("10.0.0.1 PROJ-1234 i-0000000000000000a i-1234567890abcdef0"));
    assert_eq!(
        String::from_utf8(masked.body).unwrap(),
        "10.0.0.1 AWS_TICKET_001 i-0000000000000000a AWS_EC2_001"
    );

    let bad = |cfg: MaskerConfig| Masker::new(&cfg).unwrap_err().key;
    assert_eq!(
        bad(MaskerConfig {
            disabled_kinds: vec!["nope".into()],
            ..Default::default()
        }),
        "disabled_kinds"
    );
    let custom = |name: &str, regex: &str, prefix: &str| MaskerConfig {
        custom_patterns: vec![maskgate_engine::CustomPattern {
            name: name.into(),
            regex: regex.into(),
            prefix: prefix.into(),
        }],
        ..Default::default()
    };
    assert_eq!(bad(custom("x", "(", "AWS_X")), "custom_patterns[0].regex");
    assert_eq!(bad(custom("x", "a", "lower")), "custom_patterns[0].prefix");
    assert_eq!(bad(custom("x", "a", "AWS_EC2")), "custom_patterns[0].prefix");
    assert_eq!(bad(custom("Bad Name", "a", "AWS_X")), "custom_patterns[0].name");
}

#[test]
fn vault_answers_are_checked() {
    let m = Masker::new(&MaskerConfig::default()).unwrap();
    assert!(m.plan_text("i-1234567890abcdef0").finish(&[]).is_err());
    assert!(m
        .plan_text("i-1234567890abcdef0")
        .finish(&["AWS_VPC_001".into()])
        .is_err());
    assert!(m
        .plan_text("i-1234567890abcdef0")
        .finish(&["AWS_EC2_01".into()])
        .is_err());
}

// The seed's samples -------------------------------------------------------------------------------------------

#[test]
fn seed_samples_table_c_and_d() {
    // Every single-resource case of sections C and D whose value is an identifier a user would expect masked.
    let corpus = include_str!("data/seed-samples.txt");
    let d = det();
    let mut checked = 0;
    let mut missed = Vec::new();
    for line in corpus.lines() {
        // C: "N  Type | original | legacy"; D: "name = value".
        let value = if let Some((_, rest)) = line.split_once(" | ") {
            rest.split(" | ").next().unwrap_or("").trim()
        } else if let Some((_, v)) = line.split_once(" = ") {
            v.trim()
        } else {
            continue;
        };
        if value.is_empty()
            || value.contains(' ')
            || !value.contains(|c: char| c.is_ascii_digit() || "-./".contains(c))
            || value == "arn:aws:service:region:account:resource"
        {
            continue;
        }
        checked += 1;
        let got = found(&d, line);
        if !got.iter().any(|(_, v)| v == value || value.contains(v.as_str())) {
            missed.push(line.to_string());
        }
    }
    assert!(checked > 90, "parsed {checked} cases");
    assert!(missed.is_empty(), "not masked:\n{}", missed.join("\n"));
}

#[test]
fn seed_samples_section_z_probes_untouched() {
    let corpus = include_str!("data/seed-samples.txt");
    let z = corpus.split("Z. ADDED PROBES").nth(1).unwrap();
    let d = det();
    for line in z.lines().skip(2) {
        let got = found(&d, line);
        let allowed = line.starts_with("arn:")
            || line.starts_with("ASIA")
            || line.starts_with("{\"messages\"")
            || line.starts_with("prod-database");
        if !allowed {
            assert!(got.is_empty(), "{line}: {got:?}");
        }
    }
}

// Properties -------------------------------------------------------------------------------------------------

fn id_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{17}".prop_map(|h| format!("i-{h}")),
        "[0-9a-f]{8}".prop_map(|h| format!("vpc-{h}")),
        "[0-9]{12}".prop_map(|a| format!("arn:aws:iam::{a}:role/r-{a}")),
        "[A-Z2-7]{16}".prop_map(|k| format!("AKIA{k}")),
        (1u8..=254, 0u8..=255, 1u8..=254).prop_map(|(a, b, c)| format!("10.{a}.{b}.{c}")),
        "[a-z][a-z0-9-]{4,20}[a-z0-9]".prop_map(|b| format!("s3://{b}/key")),
        "[0-9]{12}".prop_map(|a| format!("account {a}")),
    ]
}

fn filler() -> impl Strategy<Value = String> {
    let word = "[a-zA-Z .,:;()\"'\n]{0,20}".prop_map(|s| s + " ");
    prop_oneof![
        Just(" ".to_string()),
        Just(", ".to_string()),
        Just("\n".to_string()),
        Just(" — ".to_string()),
        Just(" 한국어 ".to_string()),
        // URL-encoded separators: `=`, `"`, `/`.
        Just(" key%3D".to_string()),
        Just("x%22".to_string()),
        Just("%2F".to_string()),
        // JSON's escapes spelled out in text.
        Just(" \\u0022".to_string()),
        word,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No detected original survives masking, and every placeholder maps back to what it replaced.
    #[test]
    fn no_original_survives(parts in proptest::collection::vec((filler(), id_strategy()), 1..8)) {
        let text: String = parts.iter().map(|(f, id)| format!("{f}{id}")).collect::<String>() + " end";
        let m = mask_text(&text);
        let out = String::from_utf8(m.body.clone()).unwrap();
        for (p, o) in m.map.iter() {
            prop_assert!(!out.contains(o), "{o} survived in {out}");
            prop_assert!(out.contains(p));
        }
        prop_assert!(!m.map.is_empty());
    }

    /// Arbitrary text never panics the detector, and findings are ordered, in bounds, on char boundaries.
    #[test]
    fn detector_total(text in ".{0,300}") {
        let d = det();
        let mut out = Vec::new();
        d.find(text.as_bytes(), KeyContext::default(), &mut out);
        let mut last = 0;
        for f in out {
            prop_assert!(f.start >= last && f.start < f.end && f.end <= text.len());
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            last = f.end;
        }
    }

    /// Masking JSON keeps it valid and equivalent outside the masked strings.
    #[test]
    fn json_stays_valid(parts in proptest::collection::vec((filler(), id_strategy()), 0..5), key in "[a-zA-Z]{1,8}") {
        let content: String = parts.iter().map(|(f, id)| format!("{f}{id}")).collect();
        let body = serde_json::json!({"messages": [{"role": "user", "content": content}], key: [1.5, null, true, content]}).to_string();
        let m = mask_json(&body);
        let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        prop_assert_eq!(&v["messages"][0]["role"], "user");
    }
}

#[test]
fn detector_config_default_is_valid() {
    assert!(Detector::new(&DetectorConfig::default()).is_ok());
}

#[test]
fn leak_check_refuses_an_original_left_in_a_number() {
    // Numbers are not masked; an account id masked elsewhere that also sits inside a number is a leak.
    let m = Masker::new(&MaskerConfig::default()).unwrap();
    let plan = m.plan_json(br#"{"OwnerId":"123456789012","n":1234567890123}"#).unwrap();
    let err = Numbering::default().finish_err(plan);
    assert_eq!(
        err,
        maskgate_engine::MaskError::Leak {
            kind: "account_id".into()
        }
    );
}

impl Numbering {
    fn finish_err(&mut self, plan: Plan) -> maskgate_engine::MaskError {
        let ph: Vec<String> = plan
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| maskgate_engine::placeholder::format(e.prefix, i as u64 + 1))
            .collect();
        plan.finish(&ph).unwrap_err()
    }
}

// Round trips and forgery -----------------------------------------------------------------------------------

fn arb_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => filler(),
            2 => id_strategy(),
            1 => "AWS_[A-Z]{2,5}_[0-9]{3,4}".prop_map(|p| p),
            1 => "[a-z0-9_:./\\-]{1,12}",
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// unmask(mask(x)) == x for text.
    #[test]
    fn round_trip_text(text in arb_text()) {
        let m = mask_text(&text);
        let masked = String::from_utf8(m.body.clone()).unwrap();
        let mut stats = maskgate_engine::UnmaskStats::default();
        let back = maskgate_engine::unmask_text(&masked, &m.map, &mut stats);
        prop_assert_eq!(back.as_ref(), text.as_str());
        prop_assert_eq!(stats.misses, 0);
    }

    /// unmask(mask(x)) == x for JSON bodies (as values; bytes outside changed strings are kept anyway).
    #[test]
    fn round_trip_json(a in arb_text(), b in arb_text(), key in arb_text()) {
        let body = serde_json::json!({
            "model": "claude", "system": a,
            "messages": [{"role": "user", "content": [{"type": "text", "text": b}]}],
            "metadata": {key.clone(): a, "n": 1.25e3}
        }).to_string();
        let m = mask_json(&body);
        let mut stats = maskgate_engine::UnmaskStats::default();
        let back = maskgate_engine::unmask_json(&m.body, &m.map, &mut stats).unwrap();
        let want: serde_json::Value = serde_json::from_str(&body).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&back).unwrap();
        prop_assert_eq!(got, want);
    }

    /// A request containing placeholder-shaped text never gets back an original it did not contain: whatever
    /// the provider answers (echoes, invented placeholders, other tenants' numbers), unmasking with the request's
    /// map only restores values of this request, and typed placeholders come back verbatim.
    #[test]
    fn placeholders_cannot_be_forged(request in arb_text(), invented in proptest::collection::vec("AWS_[A-Z]{2,8}_[0-9]{3}", 0..6)) {
        // Another request of the same tenant masks its own secrets first (shared numbering).
        let masker = Masker::new(&MaskerConfig::default()).unwrap();
        let mut numbering = Numbering::default();
        let other = numbering.finish(masker.plan_text("secret i-0fedcba9876543210 and 10.9.8.7 and account 999988887777"));
        prop_assert!(!other.map.is_empty());
        let mine = numbering.finish(masker.plan_text(&request));
        let masked = String::from_utf8(mine.body.clone()).unwrap();
        let answer = format!("{masked} {} {}", invented.join(" "), other.map.iter().map(|(p, _)| p).collect::<Vec<_>>().join(" "));
        let mut stats = maskgate_engine::UnmaskStats::default();
        let restored = maskgate_engine::unmask_text(&answer, &mine.map, &mut stats);
        for (_, original) in other.map.iter() {
            prop_assert!(request.contains(original) || !restored.contains(original), "forged {original}");
        }
        // Typed placeholder-shaped text comes back exactly as typed.
        prop_assert!(restored.starts_with(&request));
    }
}

#[test]
fn an_original_inside_our_placeholders_is_not_a_leak() {
    // `--username AWS` masks the name "AWS", which every placeholder contains.
    let m = mask_text("docker login --username AWS --password-stdin; also --user-name EC2_001 here");
    let out = String::from_utf8(m.body).unwrap();
    assert_eq!(
        out,
        "docker login --username AWS_IAM_USER_NAME_001 --password-stdin; also --user-name AWS_IAM_USER_NAME_002 here"
    );
}

// Regressions found by fuzzing (fuzz/, see BENCHMARKS.md) ------------------------------------------------------

/// fuzz `json_mask`: a placeholder-shaped literal typed by the user is an original; when the placeholder given
/// to another value of the same request is that very text (a fresh tenant gives `AWS_EC2_001` to the first
/// instance id), or contains it (`AWS_LITERAL_1000` contains `AWS_LITERAL_100`), the leak check must not take
/// the placeholder for a leak.
#[test]
fn fuzz_leak_check_ignores_the_placeholders_it_wrote() {
    let text = "AWS_EC2_001 is not i-0abc123def4567890";
    assert_eq!(mask_round_trip(text), "AWS_LITERAL_001 is not AWS_EC2_001");

    let body = r#"{"messages":[{"content":"i-0abc123def4567890\n\"AWS_EC2_001\""}],"model":"AWS_EC2_001"}"#;
    let m = mask_json(body);
    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(v["messages"][0]["content"], "AWS_EC2_001\n\"AWS_LITERAL_001\"");

    // The placeholder is the literal itself.
    let m = mask_text("AWS_LITERAL_001");
    assert_eq!(m.body, b"AWS_LITERAL_001");

    // A placeholder that contains an original.
    let masker = Masker::new(&MaskerConfig::default()).unwrap();
    let plan = masker.plan_text("AWS_LITERAL_100 AWS_EC2_001");
    let ph: Vec<String> = plan
        .entries()
        .iter()
        .enumerate()
        .map(|(i, e)| maskgate_engine::placeholder::format(e.prefix, 1000 - 900 * i as u64))
        .collect();
    assert_eq!(ph, ["AWS_LITERAL_1000", "AWS_LITERAL_100"]);
    let m = plan.finish(&ph).unwrap();
    assert_eq!(m.body, b"AWS_LITERAL_1000 AWS_LITERAL_100");

    // A real leak next to a placeholder is still refused.
    let plan = masker
        .plan_json(br#"{"OwnerId":"123456789012","n":123456789012}"#)
        .unwrap();
    assert!(plan.finish(&["AWS_ACCOUNT_001".into()]).is_err());
}

/// fuzz `json_mask`: the leak check scans the raw bytes; an original that only appears inside a JSON escape
/// sequence (`00e` in `\u00e5`, which says `å`) is not in the string and must not fail the request. An original
/// right after an escaped `/` is still a leak.
#[test]
fn fuzz_leak_check_ignores_escape_sequences() {
    let body = r#"{"":"bucket\\00e","\u00e5":{"k":"x\u000e \nnab"}}"#;
    let m = mask_json(body);
    let out = String::from_utf8(m.body.clone()).unwrap();
    assert_eq!(
        out,
        r#"{"":"bucket\\AWS_S3_BUCKET_001","\u00e5":{"k":"x\u000e \nnab"}}"#
    );
    let mut st = maskgate_engine::UnmaskStats::default();
    let back = maskgate_engine::unmask_json(&m.body, &m.map, &mut st).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&back).unwrap();
    assert_eq!(v, serde_json::from_str::<serde_json::Value>(body).unwrap());

    let masker = Masker::new(&MaskerConfig::default()).unwrap();
    let plan = masker
        .plan_json(br#"{"OwnerId":"123456789012","n":[1234567890123]}"#)
        .unwrap();
    assert!(plan.finish(&["AWS_ACCOUNT_001".into()]).is_err());
}

/// fuzz `detect`: the detectors take an escape spelled out in text (`\nsubnet-…`, a JSON log line pasted into a
/// prompt) for a separator, so masking writes `\nAWS_SUBNET_001`; unmasking must take the `n` for a boundary too,
/// or the request never comes back (`unmask(mask(x)) == x`), buffered or streamed.
#[test]
fn fuzz_escapes_spelled_out_in_text_round_trip() {
    let text = r"subnets subnet-2a2b3c4d, \nsubnet-5e6f7a8b\tvpc-0a1b2c3d \\bi-0abc123def4567890";
    let m = mask_text(text);
    let out = String::from_utf8(m.body.clone()).unwrap();
    assert_eq!(
        out,
        r"subnets AWS_SUBNET_001, \nAWS_SUBNET_002\tAWS_VPC_001 \\bAWS_EC2_001"
    );
    let mut st = maskgate_engine::UnmaskStats::default();
    assert_eq!(maskgate_engine::unmask_text(&out, &m.map, &mut st), text);
    assert_eq!(st.resolved, 4);
    for k in 0..=out.len() {
        let mut ts = maskgate_engine::TextStream::new();
        let mut got = String::new();
        ts.push(&out[..k], &m.map, &mut st, &mut got);
        ts.push(&out[k..], &m.map, &mut st, &mut got);
        ts.finish(&m.map, &mut st, &mut got);
        assert_eq!(got, text, "split at {k}");
    }

    // The same text inside a JSON string (raw `\\n`), and a letter that is no escape.
    let body = serde_json::json!({ "messages": [{ "content": text }], "x": r"\xi-0abc123def4567890" }).to_string();
    let m = mask_json(&body);
    let mut st = maskgate_engine::UnmaskStats::default();
    let back = maskgate_engine::unmask_json(&m.body, &m.map, &mut st).unwrap();
    let back: serde_json::Value = serde_json::from_slice(&back).unwrap();
    assert_eq!(back, serde_json::from_str::<serde_json::Value>(&body).unwrap());
}

/// fuzz `detect`: an IPv6-looking start of a larger token (`2600:1f18::1y-data-bucket`) is no address; taking it
/// wrote `AWS_IPV6_001y-…`, a placeholder glued to a letter that unmasking can never recognise.
#[test]
fn fuzz_ipv6_never_part_of_a_larger_word() {
    let d = det();
    assert!(found(&d, "가2600:1f18::1y-data-bucket").is_empty());
    assert!(found(&d, "2600:1f18::1_x 2600:1f18::1g").is_empty());
    assert_eq!(
        found(&d, "가2600:1f18::1 y"),
        [("ipv6".to_string(), "2600:1f18::1".to_string())]
    );
    let text = "the incide가2600:1f18::1y-data-bucket, 2600:1f18::1";
    mask_round_trip(text);
}

/// fuzz `detect`: masking text must not refuse it. An occurrence of an original that overlaps a value found
/// (`gluejob=b=`, where the value is `b=`) is masked together with it; an original that runs into a placeholder
/// (`=A` before `AWS_…`) is no leak.
#[test]
fn fuzz_text_masking_does_not_refuse_overlaps() {
    for text in [
        "gluejob=b=",
        "X-Amz-Credential==A\u{fffd}KA",
        "X-Amz-Credential=A\u{fffd}KIAIOSFODNN7EXAMPLE Amz",
    ] {
        mask_round_trip(text);
    }
    // `b=` is a plain-word name: it is masked where its key names it and does not spread (see `Reach`).
    assert_eq!(mask_text("gluejob=b=").body, b"gluejob=AWS_GLUE_JOB_001");
}

/// fuzz `detect`: placeholder-shaped text between non-word bytes (`-AWS_ACCOUNT_001-`, `x.AWS_EC2_001`) is a
/// placeholder for unmasking, so it must be masked as a literal, or a response would resolve it (and the text
/// would not come back as it was sent).
#[test]
fn fuzz_placeholder_literals_after_dash_or_dot_are_masked() {
    let text = "see -AWS_ACCOUNT_001- and x.AWS_EC2_001, account 111122223333, i-0abc123def4567890";
    assert_eq!(
        mask_round_trip(text),
        "see -AWS_LITERAL_001- and x.AWS_LITERAL_002, account AWS_ACCOUNT_001, AWS_EC2_001"
    );
}

/// fuzz `detect`: `X-Amz-Credential=` followed by `-`, `=A` or a stub cut by a non-ASCII byte is no credential;
/// taking `-` (masked everywhere) made every request with a dash fail the leak check, and taking `A` masked every
/// word holding an `A`.
#[test]
fn fuzz_presigned_values_are_credentials() {
    let d = det();
    for text in [
        "X-Amz-Credential=-\u{fffd}KIA",
        "X-Amz-Credential==A\u{fffd}KA",
        "X-Amz-Credential=A\u{fffd}KIAIOSFODNN7EXAMPLE",
        "X-Amz-Signature=abc",
    ] {
        assert!(
            found(&d, text).iter().all(|(k, _)| k != "presigned_credential"),
            "{text}"
        );
        mask_round_trip(text);
    }
    assert_eq!(
        found(&d, "?X-Amz-Signature=abc123&x"),
        [("presigned_credential".to_string(), "abc123".to_string())]
    );
}

/// fuzz `json_mask`: `\u+00e` is no escape (`u32::from_str_radix` takes a leading `+`); the reader accepted it,
/// masked the string as `U+000E` and sent on a body that is not JSON.
#[test]
fn fuzz_unicode_escapes_are_four_hex_digits() {
    let m = Masker::new(&MaskerConfig::default()).unwrap();
    for body in [
        r#"{"a":"\u+00e9"}"#,
        r#"{"a":"\u+0e9 i-0abc123def4567890"}"#,
        r#"["\ud83d\u+e00"]"#,
    ] {
        assert!(m.plan_json(body.as_bytes()).is_err(), "{body}");
        assert!(serde_json::from_str::<serde_json::Value>(body).is_err());
    }
    assert!(m.plan_json(br#"{"a":"\u00E9\ud83d\ude00"}"#).is_ok());
}

/// fuzz `no_forgery` (crash-de510775…): a value found elsewhere occurs twice in one word, glued (`…Adminarn:…`).
/// Grown to the word around it, the first occurrence reaches into the second, whose grown span then overlapped
/// it and was dropped: the rest of the second occurrence, a whole ARN, stayed in the text and the leak check
/// refused the request. Overlapping grown spans are joined.
#[test]
fn fuzz_glued_occurrences_are_masked_together() {
    let arn = "arn:aws:iam::123456789012:role/Admin";
    let text = format!("{arn} {arn}{arn}--x x{arn}{arn}{arn}--x");
    assert_eq!(
        mask_round_trip(&text),
        "AWS_IAM_ROLE_001 AWS_IAM_ROLE_002 AWS_IAM_ROLE_003"
    );
}

/// fuzz `detect` (crash-f8e506c7…, and `gluejob=ob=`): how far a found value reaches is a rule, not a leak. A
/// short value (`ab-1`, found after `s3://`) is masked elsewhere only as a word of its own, never inside another
/// word (`xab-1y`); a plain-word name (`--username admin`, a bucket `buc`) only where it was found: a bucket
/// named `"Bucket": "logs"` does not mask every "logs" of the text.
#[test]
fn fuzz_short_values_reach_only_words_of_their_own() {
    assert_eq!(
        mask_text("s3://ab-1 is xab-1y and ab-1.").body,
        b"s3://AWS_S3_BUCKET_001 is xab-1y and AWS_S3_BUCKET_001."
    );
    assert_eq!(
        mask_text("s3://buc is dbucet- and buc.").body,
        b"s3://AWS_S3_BUCKET_001 is dbucet- and buc."
    );
    assert_eq!(
        mask_text("{\"Bucket\": \"logs\"} and the logs").body,
        b"{\"Bucket\": \"AWS_S3_BUCKET_001\"} and the logs"
    );
    assert_eq!(mask_text("gluejob=ob= ob=").body, b"gluejob=AWS_GLUE_JOB_001 ob=");
    assert_eq!(
        mask_text("--username admin, admin").body,
        b"--username AWS_IAM_USER_NAME_001, admin"
    );
}

/// A JSON body's short strings are searched once per text and key context (AWS API output repeats them by the
/// thousand): the same text under another key is a string of its own, and what propagation adds to the first
/// one goes to its repeats too.
#[test]
fn repeated_strings_keep_their_key_context() {
    let body = r#"{"a":[{"UserName":"admin"},{"Comment":"admin"},{"UserName":"admin"},{"x":{"Comment":"admin"}}],
        "o":{"OwnerId":"123456789012"},"b":["in 123456789012","in 123456789012"],"c":"in 123456789012"}"#;
    let m = mask_json(body);
    assert_eq!(
        String::from_utf8(m.body).unwrap(),
        r#"{"a":[{"UserName":"AWS_IAM_USER_NAME_001"},{"Comment":"admin"},{"UserName":"AWS_IAM_USER_NAME_001"},{"x":{"Comment":"admin"}}],
        "o":{"OwnerId":"AWS_ACCOUNT_001"},"b":["in AWS_ACCOUNT_001","in AWS_ACCOUNT_001"],"c":"in AWS_ACCOUNT_001"}"#
    );
}

/// fuzz `detect` (crash-b7524237…): of overlapping occurrences of two values, propagation took the leftmost,
/// `a-b` inside the word `data`+`-bucket`, then dropped it (a short value inside a larger word is not masked):
/// `bucket`, a word of its own that it overlapped, was never masked and the leak check refused the request. An
/// occurrence out of reach hides nothing.
#[test]
fn fuzz_occurrences_out_of_reach_hide_nothing() {
    // (The bucket was `bucket` in the fuzzer's case; a plain word now reaches nowhere, so `bu-1` stands in.)
    let text = "s3://bu-1 and rds a-b: data-bu-1";
    assert_eq!(
        mask_round_trip(text),
        "s3://AWS_S3_BUCKET_001 and rds AWS_RDS_001: data-AWS_S3_BUCKET_001"
    );
}

/// fuzz `json_mask`: placeholder-shaped text in a skipped value (an image's base64 `data`) was left as it was,
/// and the placeholder given to a value elsewhere in the request could be that very text: unmasking turned the
/// literal into the value. Placeholder-shaped text is masked in skipped values too; the rest of them stays as
/// it was (no propagation into them, and originals in them are no leak).
#[test]
fn fuzz_placeholder_literals_in_skipped_values_are_masked() {
    let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"S3 bucket my-bucket-1"},
        {"type":"image","source":{"type":"base64","media_type":"image/png",
        "data":"i-1234567890abcdef0 my-bucket-1 AWS_S3_BUCKET_001\/x"}}]}]}"#;
    let m = mask_json(body);
    let out = String::from_utf8(m.body.clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["messages"][0]["content"][0]["text"], "S3 bucket AWS_S3_BUCKET_001");
    assert_eq!(
        v["messages"][0]["content"][1]["source"]["data"],
        "i-1234567890abcdef0 my-bucket-1 AWS_LITERAL_001/x"
    );
    let mut st = maskgate_engine::UnmaskStats::default();
    let back = maskgate_engine::unmask_json(&m.body, &m.map, &mut st).unwrap();
    let back: serde_json::Value = serde_json::from_slice(&back).unwrap();
    let sent: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(back, sent);
    // A skipped value without placeholder-shaped text keeps its bytes (the escaped `/` too).
    let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"S3 bucket my-bucket-1"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"my-bucket-1\/AWS_S3x"}}]}]}"#;
    let out = String::from_utf8(mask_json(body).body).unwrap();
    assert!(out.contains(r#""data":"my-bucket-1\/AWS_S3x""#), "{out}");
    // With placeholder literals not masked (an allowlisted or disabled kind), a skipped value holding one is
    // skipped whole again: left as it was, and not searched by the leak check (`my-bucket-1` in it is no leak).
    let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"S3 bucket my-bucket-1"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"my-bucket-1 AWS_S3_BUCKET_001"}}]}]}"#;
    let m = Masker::new(&MaskerConfig {
        disabled_kinds: vec!["placeholder_literal".into()],
        ..Default::default()
    })
    .unwrap();
    let out = String::from_utf8(Numbering::default().finish(m.plan_json(body.as_bytes()).unwrap()).body).unwrap();
    assert!(out.contains(r#""data":"my-bucket-1 AWS_S3_BUCKET_001""#), "{out}");
    assert!(out.contains(r#""text":"S3 bucket AWS_S3_BUCKET_001""#), "{out}");
}

/// A JSON string with escapes and identifiers is written back decoded and escaped again, the placeholders in
/// place: only what JSON requires escaped (`\"`, `\\`, `\n`, `\t`, other control characters as `\u00XX`),
/// the rest as UTF-8 (`\u00e9`, a surrogate pair, `\/` come out as the characters they say); an identifier spelled
/// with escapes (`i\u002d…`, `\/` inside an ARN) is replaced whole.
#[test]
fn escaped_strings_are_written_back_escaped() {
    let body = r#"{"content":"\"i-0123456789abcdef0\"\n\u00e9 caf\u00E9 \ud83d\ude00 i\u002d0fedcba9876543210 at arn:aws:s3:::my-bucket\/logs\/app \/etc\t10.0.1.25\\\u0001"}"#;
    let m = mask_json(body);
    let out = String::from_utf8(m.body.clone()).unwrap();
    assert_eq!(
        out,
        "{\"content\":\"\\\"AWS_EC2_001\\\"\\né café 😀 AWS_EC2_002 at AWS_S3_ARN_001 /etc\\tAWS_PRIVATE_IP_001\\\\\\u0001\"}"
    );
    let mut st = maskgate_engine::UnmaskStats::default();
    let back = maskgate_engine::unmask_json(&m.body, &m.map, &mut st).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&back).unwrap();
    assert_eq!(v, serde_json::from_str::<serde_json::Value>(body).unwrap());
}
