//! The catalogue of identifier kinds: a stable name (config, metrics, logs) and a placeholder prefix each.
//!
//! Names and prefixes are part of the product's interface: placeholders persist in vaults and in conversations
//! held by providers, so a kind is never renamed; new kinds are appended.

/// How a kind is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// A context-free pattern with a low false-positive risk.
    Pattern,
    /// The shape collides with ordinary strings: masked only when a keyword, JSON key or CLI flag is near.
    Ambiguous,
    /// Customer-chosen names: only from a JSON key or CLI flag (or a keyword right before the value).
    Context,
    /// Configured by the operator.
    Custom,
}

#[derive(Debug, Clone)]
pub struct KindInfo {
    pub name: String,
    pub prefix: String,
    pub tier: Tier,
}

impl KindInfo {
    /// Whether the kind's values are names a customer chose: the context tier, and bucket names (a pattern-tier
    /// kind for its URIs and endpoints, but `"Bucket": "logs"` names one with a plain word too). A plain word of
    /// such a kind is masked only where it was found.
    pub fn customer_named(&self) -> bool {
        self.tier == Tier::Context || self.name == "s3_bucket"
    }
}

/// `(name, prefix, tier)` of every built-in kind. Index = [`KindId`] of the built-in kinds.
pub const BUILTIN: &[(&str, &str, Tier)] = {
    use Tier::*;
    &[
        // Credentials and principals
        ("access_key", "AWS_ACCESS_KEY", Pattern),
        ("iam_unique_id", "AWS_IAM_ID", Pattern),
        ("secret_key", "AWS_SECRET_KEY", Ambiguous),
        ("session_token", "AWS_SESSION_TOKEN", Pattern),
        ("presigned_credential", "AWS_PRESIGNED", Pattern),
        ("bedrock_api_key", "AWS_BEDROCK_KEY", Pattern),
        ("appsync_api_key", "AWS_APPSYNC_KEY", Pattern),
        // Account and organization
        ("account_id", "AWS_ACCOUNT", Ambiguous),
        ("canonical_user_id", "AWS_CANONICAL_USER", Ambiguous),
        ("org_id", "AWS_ORG", Pattern),
        ("org_root", "AWS_ORG_ROOT", Pattern),
        ("org_unit", "AWS_ORG_OU", Pattern),
        ("org_policy", "AWS_ORG_POLICY", Pattern),
        ("org_handshake", "AWS_ORG_HANDSHAKE", Pattern),
        ("org_account_request", "AWS_ORG_CAR", Pattern),
        // ARNs (the whole ARN is one value; the kind follows service and resource type)
        ("arn", "AWS_ARN", Pattern),
        ("iam_role_arn", "AWS_IAM_ROLE", Pattern),
        ("iam_user_arn", "AWS_IAM_USER", Pattern),
        ("iam_group_arn", "AWS_IAM_GROUP", Pattern),
        ("iam_policy_arn", "AWS_IAM_POLICY", Pattern),
        ("iam_instance_profile_arn", "AWS_IAM_INSTANCE_PROFILE", Pattern),
        ("iam_assumed_role_arn", "AWS_IAM_ASSUMED_ROLE", Pattern),
        ("iam_root_arn", "AWS_IAM_ROOT", Pattern),
        ("iam_provider_arn", "AWS_IAM_PROVIDER", Pattern),
        ("lambda_arn", "AWS_LAMBDA_ARN", Pattern),
        ("s3_arn", "AWS_S3_ARN", Pattern),
        ("kms_key_arn", "AWS_KMS_KEY_ARN", Pattern),
        ("secret_arn", "AWS_SECRET_ARN", Pattern),
        ("ssm_parameter_arn", "AWS_SSM_PARAM_ARN", Pattern),
        ("dynamodb_table_arn", "AWS_DYNAMODB_TABLE", Pattern),
        ("sns_topic_arn", "AWS_SNS_TOPIC", Pattern),
        ("sqs_queue_arn", "AWS_SQS_ARN", Pattern),
        ("ecs_arn", "AWS_ECS_ARN", Pattern),
        ("eks_arn", "AWS_EKS_ARN", Pattern),
        ("elb_arn", "AWS_ELB_ARN", Pattern),
        ("cloudformation_stack_arn", "AWS_STACK_ARN", Pattern),
        ("acm_certificate_arn", "AWS_CERT_ARN", Pattern),
        ("rds_arn", "AWS_RDS_ARN", Pattern),
        ("ec2_arn", "AWS_EC2_ARN", Pattern),
        ("logs_arn", "AWS_LOGS_ARN", Pattern),
        ("states_arn", "AWS_STATES_ARN", Pattern),
        ("kinesis_arn", "AWS_KINESIS_ARN", Pattern),
        ("codecommit_arn", "AWS_CODECOMMIT_ARN", Pattern),
        ("ecr_arn", "AWS_ECR_ARN", Pattern),
        ("batch_arn", "AWS_BATCH_ARN", Pattern),
        ("sagemaker_arn", "AWS_SAGEMAKER_ARN", Pattern),
        ("opensearch_arn", "AWS_OPENSEARCH_ARN", Pattern),
        ("athena_arn", "AWS_ATHENA_ARN", Pattern),
        ("glue_arn", "AWS_GLUE_ARN", Pattern),
        ("elasticache_arn", "AWS_ELASTICACHE_ARN", Pattern),
        ("redshift_arn", "AWS_REDSHIFT_ARN", Pattern),
        // EC2 / VPC resource ids
        ("ec2_instance", "AWS_EC2", Pattern),
        ("ami", "AWS_AMI", Pattern),
        ("ebs_volume", "AWS_EBS_VOL", Pattern),
        ("ebs_snapshot", "AWS_SNAPSHOT", Pattern),
        ("security_group", "AWS_SG", Pattern),
        ("security_group_rule", "AWS_SG_RULE", Pattern),
        ("subnet", "AWS_SUBNET", Pattern),
        ("vpc", "AWS_VPC", Pattern),
        ("internet_gateway", "AWS_IGW", Pattern),
        ("egress_only_igw", "AWS_EIGW", Pattern),
        ("nat_gateway", "AWS_NAT_GW", Pattern),
        ("network_interface", "AWS_ENI", Pattern),
        ("eni_attachment", "AWS_ENI_ATTACH", Pattern),
        ("route_table", "AWS_RTB", Pattern),
        ("route_table_assoc", "AWS_RTB_ASSOC", Pattern),
        ("network_acl", "AWS_NACL", Pattern),
        ("network_acl_assoc", "AWS_NACL_ASSOC", Pattern),
        ("eip_allocation", "AWS_EIP_ALLOC", Pattern),
        ("eip_association", "AWS_EIP_ASSOC", Pattern),
        ("vpc_endpoint", "AWS_VPCE", Pattern),
        ("vpc_endpoint_service", "AWS_VPCE_SVC", Pattern),
        ("vpc_peering", "AWS_PCX", Pattern),
        ("transit_gateway", "AWS_TGW", Pattern),
        ("tgw_attachment", "AWS_TGW_ATTACH", Pattern),
        ("tgw_route_table", "AWS_TGW_RTB", Pattern),
        ("tgw_multicast_domain", "AWS_TGW_MCAST", Pattern),
        ("launch_template", "AWS_LAUNCH_TEMPLATE", Pattern),
        ("flow_log", "AWS_FLOW_LOG", Pattern),
        ("dhcp_options", "AWS_DHCP_OPTIONS", Pattern),
        ("customer_gateway", "AWS_CGW", Pattern),
        ("vpn_gateway", "AWS_VGW", Pattern),
        ("vpn_connection", "AWS_VPN", Pattern),
        ("spot_request", "AWS_SPOT_REQUEST", Pattern),
        ("capacity_reservation", "AWS_CAPACITY_RESERVATION", Pattern),
        ("dedicated_host", "AWS_DEDICATED_HOST", Pattern),
        ("key_pair", "AWS_KEY_PAIR", Pattern),
        ("prefix_list", "AWS_PREFIX_LIST", Pattern),
        ("placement_group", "AWS_PLACEMENT_GROUP", Pattern),
        ("reservation", "AWS_RESERVATION", Pattern),
        ("ec2_resource", "AWS_EC2_RESOURCE", Pattern),
        ("efs_filesystem", "AWS_EFS", Pattern),
        ("efs_mount_target", "AWS_EFS_MOUNT", Pattern),
        ("efs_access_point", "AWS_EFS_AP", Pattern),
        ("ssm_resource", "AWS_SSM_RESOURCE", Pattern),
        ("ssm_managed_instance", "AWS_SSM_MI", Pattern),
        ("other_resource_id", "AWS_RESOURCE", Pattern),
        // Keys
        ("kms_key_id", "AWS_KMS_KEY", Ambiguous),
        ("kms_alias", "AWS_KMS_ALIAS", Pattern),
        // S3
        ("s3_bucket", "AWS_S3_BUCKET", Pattern),
        // Endpoints and hostnames
        ("rds_endpoint", "AWS_RDS_ENDPOINT", Pattern),
        ("elasticache_endpoint", "AWS_ELASTICACHE_ENDPOINT", Pattern),
        ("redshift_endpoint", "AWS_REDSHIFT_ENDPOINT", Pattern),
        ("elb_dns", "AWS_ELB_DNS", Pattern),
        ("eks_endpoint", "AWS_EKS_ENDPOINT", Pattern),
        ("ecr_uri", "AWS_ECR_URI", Pattern),
        ("apigw_endpoint", "AWS_APIGW_ENDPOINT", Pattern),
        ("lambda_url", "AWS_LAMBDA_URL", Pattern),
        ("appsync_endpoint", "AWS_APPSYNC_ENDPOINT", Pattern),
        ("cloudfront_domain", "AWS_CLOUDFRONT_DOMAIN", Pattern),
        ("opensearch_endpoint", "AWS_OPENSEARCH_ENDPOINT", Pattern),
        ("vpce_dns", "AWS_VPCE_DNS", Pattern),
        ("efs_dns", "AWS_EFS_DNS", Pattern),
        ("beanstalk_host", "AWS_BEANSTALK_HOST", Pattern),
        ("sqs_queue_url", "AWS_SQS_QUEUE", Pattern),
        ("ec2_hostname", "AWS_EC2_DNS", Pattern),
        ("aws_hostname", "AWS_HOST", Pattern),
        // Network
        ("private_ip", "AWS_PRIVATE_IP", Pattern),
        ("public_ip", "AWS_PUBLIC_IP", Pattern),
        ("ipv6", "AWS_IPV6", Pattern),
        ("mac_address", "AWS_MAC", Ambiguous),
        ("hosted_zone_id", "AWS_ROUTE53_ZONE", Ambiguous),
        ("cloudfront_distribution_id", "AWS_CLOUDFRONT_ID", Ambiguous),
        ("apigw_id", "AWS_API_GW", Ambiguous),
        // Other service ids
        ("emr_cluster", "AWS_EMR_CLUSTER", Pattern),
        ("directconnect_id", "AWS_DX", Pattern),
        ("directory_id", "AWS_DIRECTORY", Pattern),
        ("beanstalk_env", "AWS_BEANSTALK_ENV", Pattern),
        ("cloudmap_id", "AWS_CLOUDMAP", Pattern),
        ("rds_resource_id", "AWS_RDS_RESOURCE", Pattern),
        ("storage_gateway", "AWS_STORAGE_GW", Pattern),
        ("resolver_id", "AWS_RESOLVER", Pattern),
        ("cloudhsm_cluster", "AWS_CLOUDHSM", Pattern),
        ("cognito_user_pool", "AWS_COGNITO_USER_POOL", Pattern),
        ("cognito_identity_pool", "AWS_COGNITO_ID_POOL", Pattern),
        ("log_group", "AWS_LOG_GROUP", Pattern),
        // Names (JSON key, CLI flag or keyword right before)
        ("lambda_function", "AWS_LAMBDA_FUNCTION", Context),
        ("dynamodb_table", "AWS_DYNAMODB_NAME", Context),
        ("rds_instance", "AWS_RDS", Context),
        ("elasticache_cluster", "AWS_ELASTICACHE", Context),
        ("redshift_cluster", "AWS_REDSHIFT", Context),
        ("iam_role_name", "AWS_IAM_ROLE_NAME", Context),
        ("iam_user_name", "AWS_IAM_USER_NAME", Context),
        ("stack_name", "AWS_STACK", Context),
        ("sqs_queue_name", "AWS_SQS_NAME", Context),
        ("sns_topic_name", "AWS_SNS_NAME", Context),
        ("ecr_repository", "AWS_ECR_REPO", Context),
        ("secret_name", "AWS_SECRET", Context),
        ("glue_job", "AWS_GLUE_JOB", Context),
        ("ecs_cluster", "AWS_ECS_CLUSTER", Context),
        ("eks_cluster", "AWS_EKS_CLUSTER", Context),
        ("ssm_parameter", "AWS_SSM_PARAM", Context),
        // Placeholder-shaped text already present in a request (masked so that it can never be resolved into
        // someone else's original, and comes back verbatim).
        ("placeholder_literal", "AWS_LITERAL", Pattern),
    ]
};

/// Index into a detector's kind table (built-ins first, then custom kinds).
pub type KindId = u16;

/// Looks a built-in kind up by name.
pub fn builtin_id(name: &str) -> Option<KindId> {
    // foldhash, not SipHash: the detector looks kinds up by name per match (resource ids, ARNs).
    static INDEX: std::sync::OnceLock<foldhash::HashMap<&'static str, KindId>> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        BUILTIN
            .iter()
            .enumerate()
            .map(|(i, (n, _, _))| (*n, i as KindId))
            .collect()
    });
    index.get(name).copied()
}

/// [`builtin_id`] at compile time (`const K: KindId = const_id("vpc")`): an unknown name fails the build.
pub(crate) const fn const_id(name: &str) -> KindId {
    let n = name.as_bytes();
    let mut i = 0;
    while i < BUILTIN.len() {
        let b = BUILTIN[i].0.as_bytes();
        if b.len() == n.len() {
            let mut k = 0;
            while k < n.len() && b[k] == n[k] {
                k += 1;
            }
            if k == n.len() {
                return i as KindId;
            }
        }
        i += 1;
    }
    panic!("unknown built-in kind")
}

/// The id of a built-in kind named by a literal, computed at compile time.
macro_rules! kid {
    ($name:literal) => {{
        const K: $crate::kinds::KindId = $crate::kinds::const_id($name);
        K
    }};
}
pub(crate) use kid;

/// Like [`builtin_id`], for names the engine itself uses: a missing name is a programming error caught by tests.
pub(crate) fn id(name: &str) -> KindId {
    match builtin_id(name) {
        Some(id) => id,
        None => panic!("unknown built-in kind {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_prefixes_unique_and_valid() {
        let mut names = HashSet::new();
        let mut prefixes = HashSet::new();
        for (n, p, _) in BUILTIN {
            assert!(names.insert(*n), "duplicate name {n}");
            assert!(prefixes.insert(*p), "duplicate prefix {p}");
            assert!(crate::placeholder::is_valid_prefix(p), "bad prefix {p}");
        }
        assert!(BUILTIN.len() >= 51);
    }
}
