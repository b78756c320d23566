//! Finding AWS identifiers in text: every detector in one pass.
//!
//! The text is cut into *tokens*: maximal runs of ASCII bytes that are not separators (whitespace, quotes,
//! brackets, `,`, `;`, `|`, `\`, any non-ASCII byte). No identifier of the catalogue contains a separator, so no
//! match can cross a token edge. Each token goes through a cheap byte-class filter; only tokens that can hold an
//! identifier (a digit together with punctuation, a long upper-case run, a URL-ish shape) are searched with one
//! multi-pattern regex (regex-automata, ASCII mode, leftmost-first with the patterns in priority order: ARNs
//! and URLs before hostnames before bare ids). Every pattern is anchored on word boundaries and re-checked in
//! code (`post`), so an id is never taken out of a larger token (`ami-…` never yields an EC2 id). Tokens the
//! regex leaves alone are checked for the ambiguous shapes (12-digit account ids, UUIDs, 40-char secrets, …),
//! which are accepted only with context: a keyword shortly before on the same line, a CLI flag, or the JSON
//! key of the string (see [`KeyContext`]).

use std::collections::HashSet;

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::meta::Regex;
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

use crate::classify::Classifier;
use crate::placeholder;

mod fast;
use crate::kinds::{self, kid, KindId, KindInfo, Tier, BUILTIN};
use fast::SEGMENT_BLOCKS;

/// Texts up to this long are scanned byte by byte ([`Detector::find_reference`]'s loop): the block scan's fixed
/// cost (two blocks classified, anchors over a group of four) is ~1,500 instructions, more than the byte loop
/// spends on a short string. A JSON request of AWS API output is tens of thousands of them (`running`,
/// `m5.large`, an instance id); measured with 16 to 256, the whole request cost least from 32 to 64 (callgrind;
/// strings of ~100 bytes cost more by bytes).
const SHORT: usize = 48;

/// One identifier found in a text: a byte span and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub kind: KindId,
}

/// A custom pattern from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    /// Stable name, used in metrics and logs (`[a-z0-9_]+`).
    pub name: String,
    /// Regular expression (Rust `regex` syntax, ASCII mode).
    pub regex: String,
    /// Placeholder prefix, `AWS_` followed by upper-case segments (`AWS_CORP_PROJECT`).
    pub prefix: String,
}

/// What the detector may use besides the text.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Kind names not to detect.
    pub disabled_kinds: Vec<String>,
    /// Extra patterns, each its own kind.
    pub custom_patterns: Vec<CustomPattern>,
    /// Values never to mask (exact match on the identifier).
    pub allowlist: Vec<String>,
    /// Let AWS-managed names pass: `arn:aws:iam::aws:policy/…` and other ARNs of account `aws`, `alias/aws/…`.
    /// They are public and tell nothing about the customer, and the model answers better knowing them; but they
    /// are identifiers of the pattern tier, and the catalogue lists them for an allow-list a user may choose, so
    /// by default they are masked like every other ARN and alias (fail closed).
    pub keep_aws_managed: bool,
}

/// A configuration error; names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The JSON key (and its parent's key) of the string being scanned: `{"OwnerId": "123456789012"}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyContext<'a> {
    pub key: Option<&'a str>,
    pub parent: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------------------------------
// Byte classes

pub(crate) const SEP: u8 = 1;
const DIGIT: u8 = 2;
const UPPER: u8 = 4;
const LOWER: u8 = 8;
const PUNCT: u8 = 16;

pub(crate) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b >= 0x80 {
            SEP
        } else if b.is_ascii_digit() {
            DIGIT
        } else if b.is_ascii_uppercase() {
            UPPER
        } else if b.is_ascii_lowercase() {
            LOWER
        } else {
            match b {
                b'-' | b'.' | b':' | b'/' | b'=' | b'%' | b'@' | b'_' | b'+' | b'#' | b'~' | b'*' | b'&' | b'?'
                | b'!' | b'$' => PUNCT,
                _ => SEP, // whitespace, control, quotes, brackets, , ; | \ ` < >
            }
        };
        i += 1;
    }
    t
};

#[inline]
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

// ---------------------------------------------------------------------------------------------------------------
// The pattern table

const REGION: &str = r"(?:[a-z]{2}|eusc)(?:-(?:gov|iso[bef]?|de))?-[a-z]+-[0-9]{1,2}";
const PARTITION: &str = r"aws(?:-cn|-us-gov|-iso(?:-[bef])?|-eusc)?";

/// Prefixes of `prefix-<hex>` ids, with the kind and the accepted hex lengths.
/// `Lenient` = 8 to 17 hex (real ids are 8 or 17; documentation often shows the lengths in between) or an
/// `EXAMPLE`-suffixed documentation id; `Exact(n, m)` = exactly n or m.
#[derive(Clone, Copy)]
enum HexLen {
    Lenient,
    Exact(usize, usize),
    Range(usize, usize),
}

/// The kind and length rule of a resource-id prefix of [`HEX_PREFIXES`] (`post` asks once per id found).
fn hex_prefix(prefix: &[u8]) -> Option<(KindId, HexLen)> {
    static INDEX: std::sync::OnceLock<foldhash::HashMap<&'static [u8], (KindId, HexLen)>> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut m = foldhash::HashMap::default();
        for (p, kind, rule) in HEX_PREFIXES {
            // The first entry of a prefix wins, as a search from the start would find it.
            m.entry(p.as_bytes()).or_insert((kinds::id(kind), *rule));
        }
        m
    });
    index.get(prefix).copied()
}

const HEX_PREFIXES: &[(&str, &str, HexLen)] = {
    use HexLen::*;
    &[
        ("i", "ec2_instance", Lenient),
        ("ami", "ami", Lenient),
        ("aki", "ec2_resource", Exact(8, 17)),
        ("ari", "ec2_resource", Exact(8, 17)),
        ("vol", "ebs_volume", Lenient),
        ("snap", "ebs_snapshot", Lenient),
        ("sg", "security_group", Lenient),
        ("sgr", "security_group_rule", Lenient),
        ("subnet", "subnet", Lenient),
        ("vpc", "vpc", Lenient),
        ("igw", "internet_gateway", Lenient),
        ("eigw", "egress_only_igw", Lenient),
        ("nat", "nat_gateway", Lenient),
        ("eni", "network_interface", Lenient),
        ("eni-attach", "eni_attachment", Lenient),
        ("rtb", "route_table", Lenient),
        ("rtbassoc", "route_table_assoc", Lenient),
        ("acl", "network_acl", Lenient),
        ("aclassoc", "network_acl_assoc", Lenient),
        ("eipalloc", "eip_allocation", Lenient),
        ("eipassoc", "eip_association", Lenient),
        ("vpce", "vpc_endpoint", Lenient),
        ("vpce-svc", "vpc_endpoint_service", Lenient),
        ("pcx", "vpc_peering", Lenient),
        ("tgw", "transit_gateway", Lenient),
        ("tgw-attach", "tgw_attachment", Lenient),
        ("tgw-rtb", "tgw_route_table", Lenient),
        ("tgw-mcast-domain", "tgw_multicast_domain", Lenient),
        ("lt", "launch_template", Exact(8, 17)),
        ("fl", "flow_log", Exact(8, 17)),
        ("dopt", "dhcp_options", Lenient),
        ("cgw", "customer_gateway", Lenient),
        ("vgw", "vpn_gateway", Lenient),
        ("vpn", "vpn_connection", Lenient),
        ("sir", "spot_request", Exact(8, 17)),
        ("cr", "capacity_reservation", Exact(8, 17)),
        ("h", "dedicated_host", Exact(8, 17)),
        ("key", "key_pair", Exact(8, 17)),
        ("pl", "prefix_list", Exact(8, 17)),
        ("pg", "placement_group", Exact(8, 17)),
        ("r", "reservation", Exact(8, 17)),
        ("lgw", "ec2_resource", Lenient),
        ("lgw-rtb", "ec2_resource", Lenient),
        ("eice", "ec2_resource", Lenient),
        ("iip-assoc", "ec2_resource", Lenient),
        ("ipam", "ec2_resource", Lenient),
        ("ipam-pool", "ec2_resource", Lenient),
        ("ipam-scope", "ec2_resource", Lenient),
        ("ipam-res-disco", "ec2_resource", Lenient),
        ("cvpn-endpoint", "ec2_resource", Lenient),
        ("cvpn-assoc", "ec2_resource", Lenient),
        ("tmf", "ec2_resource", Exact(17, 17)),
        ("tmt", "ec2_resource", Exact(17, 17)),
        ("tms", "ec2_resource", Exact(17, 17)),
        ("tmfr", "ec2_resource", Exact(17, 17)),
        ("vai", "ec2_resource", Exact(17, 17)),
        ("vae", "ec2_resource", Exact(17, 17)),
        ("vag", "ec2_resource", Exact(17, 17)),
        ("vatp", "ec2_resource", Exact(17, 17)),
        ("iew", "ec2_resource", Exact(17, 17)),
        ("cagw", "ec2_resource", Exact(17, 17)),
        ("bun", "ec2_resource", Exact(8, 17)),
        ("import-ami", "ec2_resource", Lenient),
        ("import-snap", "ec2_resource", Lenient),
        ("import-i", "ec2_resource", Lenient),
        ("export-i", "ec2_resource", Lenient),
        ("export-ami", "ec2_resource", Lenient),
        ("fcap", "ec2_resource", Exact(17, 17)),
        ("fs", "efs_filesystem", Range(8, 40)),
        ("fsmt", "efs_mount_target", Range(8, 40)),
        ("fsap", "efs_access_point", Exact(17, 17)),
        ("fsvol", "other_resource_id", Exact(17, 17)),
        ("backup", "other_resource_id", Exact(17, 17)),
        ("op", "other_resource_id", Exact(17, 17)),
        ("mw", "ssm_resource", Exact(17, 17)),
        ("mi", "ssm_managed_instance", Exact(17, 17)),
        ("pb", "ssm_resource", Exact(17, 17)),
        ("oi", "ssm_resource", Exact(12, 12)),
        ("cks", "other_resource_id", Exact(17, 17)),
        ("s", "other_resource_id", Exact(17, 17)),
        ("csc", "other_resource_id", Exact(17, 17)),
    ]
};

/// When an id of [`Post::Lettered`] may be letters only.
#[derive(Clone, Copy)]
enum Letters {
    /// A body of at least this many bytes (an organization id: ten are rarer words than twelve).
    AtLeast(usize),
    /// A body with a capital (policy ids: `p-FullAWSAccess`, not `p-worktree`).
    Capital,
    /// Any body the rule matches (a prefix and a body no word has: `j-` and eight capitals).
    Any,
}

/// What to do with a raw match of pattern `i`.
#[derive(Clone, Copy)]
enum Post {
    /// Fixed kind; `left_no_dash`: reject when preceded by `-`.
    Fixed(KindId),
    /// Fixed kind, only when the match holds at least one digit.
    FixedDigit(KindId),
    /// Fixed kind, also inside a larger token (`creds-AKIA…`, `x.ASIA…`): a credential's prefix and length are
    /// no part of any name, and one that went out would be a leak however it was embedded.
    Credential(KindId),
    /// Fixed kind; a match without a digit only when its body (after the prefix's `-`) is as [`Letters`] says:
    /// ids whose random part is letters only now and then (`o-exampleorgid`, `p-FullAWSAccess`, `j-XXXXXXXX`).
    Lettered(KindId, Letters),
    Arn,
    ArnUrlEncoded,
    HexId,
    AwsHost,
    /// `https://s3….amazonaws.com/<bucket>` and `s3://<bucket>/…`: the bucket only.
    S3Bucket,
    Presigned,
    /// An access key id and its secret before a URI's `@`: a secret key, without the `@` (and the bucket after it,
    /// which [`Detector::patterns_with`] adds in an `s3://` URI).
    UserInfo,
    Ipv4,
    Ipv6,
    KmsAlias,
}

struct Rule {
    pattern: String,
    post: Post,
}

fn rules() -> Vec<Rule> {
    let k = kinds::id;
    let hex_alternation = {
        let mut p: Vec<&str> = HEX_PREFIXES.iter().map(|(p, _, _)| *p).collect();
        p.sort_by_key(|s| std::cmp::Reverse(s.len()));
        p.join("|")
    };
    let r = |pattern: String, post: Post| Rule { pattern, post };
    vec![
        // ARNs (URL-encoded too), then URLs with a path that carries customer data.
        r(
            format!(
                r"\barn:{PARTITION}:[a-z0-9][a-z0-9.-]{{0,62}}:(?:{REGION})?:(?:[0-9]{{12}}|aws|[a-z0-9.-]{{1,63}})?:[^\s\x22'<>`,;{{}}\[\]()\\|]+"
            ),
            Post::Arn,
        ),
        r(
            format!(
                r"(?i:\barn%3a){PARTITION}(?i:%3a)[a-z0-9.-]{{1,63}}(?i:%3a)(?:{REGION})?(?i:%3a)(?:[0-9]{{12}}|aws)?(?i:%3a)[A-Za-z0-9%._~+=@*-]+"
            ),
            Post::ArnUrlEncoded,
        ),
        r(
            format!(
                r"\bhttps?://(?:sqs\.{REGION}\.|{REGION}\.queue\.|queue\.)amazonaws\.com(?:\.cn)?/[0-9]{{12}}/[A-Za-z0-9_-]{{1,80}}(?:\.fifo)?\b"
            ),
            Post::Fixed(k("sqs_queue_url")),
        ),
        r(
            format!(
                r"\bhttps?://s3(?:[.-](?:dualstack\.)?{REGION})?\.amazonaws\.com(?:\.cn)?/[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9]\b"
            ),
            Post::S3Bucket,
        ),
        r(
            format!(
                r"\b[0-9]{{12}}\.dkr\.ecr(?:-fips)?\.{REGION}\.amazonaws\.com(?:\.cn)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}|@sha256:[0-9a-f]{{64}})?)?\b"
            ),
            Post::Fixed(k("ecr_uri")),
        ),
        // Hostnames
        r(
            format!(r"\bi-[0-9a-f]{{8,17}}\.(?:{REGION}\.compute|ec2)\.internal\b"),
            Post::Fixed(k("ec2_hostname")),
        ),
        r(
            format!(
                r"\bip-[0-9]{{1,3}}-[0-9]{{1,3}}-[0-9]{{1,3}}-[0-9]{{1,3}}(?:\.(?:{REGION}\.compute|ec2)\.internal)?\b"
            ),
            Post::Fixed(k("ec2_hostname")),
        ),
        r(
            format!(r"\b[a-z0-9]{{32}}\.lambda-url\.{REGION}\.on\.aws\b"),
            Post::Fixed(k("lambda_url")),
        ),
        r(
            r"\bd[a-z0-9]{12,13}\.cloudfront\.net\b".to_string(),
            Post::Fixed(k("cloudfront_domain")),
        ),
        r(
            format!(r"(?i:\b[a-z0-9][a-z0-9-]*(?:\.{REGION})?\.elasticbeanstalk\.com\b)"),
            Post::Fixed(k("beanstalk_host")),
        ),
        r(
            r"(?i:\b[a-z0-9][a-z0-9-]{0,62}(?:\.[a-z0-9][a-z0-9-]{0,62})*\.amazonaws\.com(?:\.cn)?\b)".to_string(),
            Post::AwsHost,
        ),
        r(
            r"\bs3[an]?://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\b".to_string(),
            Post::S3Bucket,
        ),
        // Credentials
        r(
            r"(?i:\bx-amz-(?:credential|security-token|signature)=)[^&\s\x22'<>]+".to_string(),
            Post::Presigned,
        ),
        r(
            r"\b(?:IQoJb3JpZ2luX2Vj|AgoJb3JpZ2luX2Vj|FwoGZXIvYXdz|FQoGZXIvYXdz|AQoDYXdz)[A-Za-z0-9/+=]{20,}"
                .to_string(),
            Post::Credential(k("session_token")),
        ),
        // (No upper bound, unlike gitleaks' `{109,269}`: its wrapper asks for a token edge after it, and a match
        // that stopped inside a longer run would leave the rest glued to the placeholder. git-secrets has
        // none either. Found by the `detect` fuzzer.)
        r(
            r"\bABSK[A-Za-z0-9+/]{109,}={0,2}".to_string(),
            Post::Credential(k("bedrock_api_key")),
        ),
        r(
            r"\bbedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%._-]*".to_string(),
            Post::Fixed(k("bedrock_api_key")),
        ),
        // An access key id and its secret as a URI's user info (`s3a://AKIA…:<secret>@bucket/…`, Hadoop's form
        // and many connection strings'; the secret's `/` and `+` percent-encoded or not): one secret, up to the
        // `@`, and in an `s3://` URI the bucket after it. (Alone, a 40-character secret needs a keyword or an
        // access key id near it, and here it is no token of its own.)
        r(
            r"\b(?:AKIA|ASIA)[A-Z0-9]{16}:(?:[A-Za-z0-9+/]|%2[FfBb]){40}@(?:[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\b)?"
                .to_string(),
            Post::UserInfo,
        ),
        r(
            r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b".to_string(),
            Post::Credential(k("access_key")),
        ),
        // (A role session name has 2 to 64 characters; a longer run after the `:` is masked whole rather than cut
        // at 64, which left the rest glued to the placeholder.)
        r(
            r"\b(?:AIDA|AROA|AGPA|AIPA|ANPA|ANVA|APKA|ASCA)[A-Z0-9]{16,17}(?::[A-Za-z0-9_+=,.@-]{2,}|\b)".to_string(),
            Post::Credential(k("iam_unique_id")),
        ),
        r(r"\bda2-[a-z0-9]{26}\b".to_string(), Post::Fixed(k("appsync_api_key"))),
        // Resource ids
        r(
            format!(r"\b(?:{hex_alternation})-(?:[0-9a-f]{{8,40}}|[0-9a-f]{{1,17}}EXAMPLE[0-9A-Za-z]{{0,4}})\b"),
            Post::HexId,
        ),
        r(r"\bmrk-[0-9a-f]{32}\b".to_string(), Post::Fixed(k("kms_key_id"))),
        r(
            r"\bou-[0-9a-z]{4,32}-[a-z0-9]{8,32}\b".to_string(),
            Post::Fixed(k("org_unit")),
        ),
        r(
            r"\bo-[a-z0-9]{10,32}\b".to_string(),
            Post::Lettered(k("org_id"), Letters::AtLeast(12)),
        ),
        r(r"\br-[0-9a-z]{4,32}\b".to_string(), Post::FixedDigit(k("org_root"))),
        r(
            r"\bp-[0-9a-zA-Z_]{8,128}\b".to_string(),
            Post::Lettered(k("org_policy"), Letters::Capital),
        ),
        r(
            r"\bh-[0-9a-z]{8,32}\b".to_string(),
            Post::FixedDigit(k("org_handshake")),
        ),
        r(
            r"\bcar-[a-z0-9]{8,32}\b".to_string(),
            Post::FixedDigit(k("org_account_request")),
        ),
        r(
            r"\bj-[A-Z0-9]{8,16}\b".to_string(),
            Post::Lettered(k("emr_cluster"), Letters::Any),
        ),
        r(
            r"\bdx(?:con|lag|vif|gw)-[a-z0-9]{8}\b".to_string(),
            Post::Fixed(k("directconnect_id")),
        ),
        r(r"\bd-[0-9a-f]{10}\b".to_string(), Post::FixedDigit(k("directory_id"))),
        r(r"\be-[a-z0-9]{10}\b".to_string(), Post::FixedDigit(k("beanstalk_env"))),
        r(
            r"\b(?:ns|srv)-[a-z0-9]{16}\b".to_string(),
            Post::Lettered(k("cloudmap_id"), Letters::Any),
        ),
        r(
            r"\b(?:db|cluster)-[A-Z0-9]{16,26}\b".to_string(),
            Post::FixedDigit(k("rds_resource_id")),
        ),
        r(r"\bsgw-[0-9A-F]{8}\b".to_string(), Post::Fixed(k("storage_gateway"))),
        r(
            r"\brslvr-[a-z]+-[0-9a-f]{17}\b".to_string(),
            Post::Fixed(k("resolver_id")),
        ),
        r(
            r"\bcluster-[2-7a-zA-Z]{11,16}\b".to_string(),
            Post::FixedDigit(k("cloudhsm_cluster")),
        ),
        r(
            format!(r"\b{REGION}_[A-Za-z0-9]{{9}}\b"),
            Post::FixedDigit(k("cognito_user_pool")),
        ),
        r(
            format!(
                r"\b{REGION}:[0-9a-zA-Z]{{8}}-[0-9a-zA-Z]{{4}}-[0-9a-zA-Z]{{4}}-[0-9a-zA-Z]{{4}}-[0-9a-zA-Z]{{12}}\b"
            ),
            Post::Fixed(k("cognito_identity_pool")),
        ),
        r(
            r"/aws/[a-z0-9-]+/[A-Za-z0-9_./#-]+".to_string(),
            Post::Fixed(k("log_group")),
        ),
        r(r"\balias/[A-Za-z0-9/_-]+".to_string(), Post::KmsAlias),
        // Network
        r(
            r"\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?:/[0-9]{1,2})?\b".to_string(),
            Post::Ipv4,
        ),
        r(
            r"\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:/[0-9]{1,3})?".to_string(),
            Post::Ipv6,
        ),
        // Placeholder-shaped text typed into a request.
        r(
            r"\bAWS(?:_[A-Z][A-Z0-9]*)+_[0-9]{3,}\b".to_string(),
            Post::Fixed(k("placeholder_literal")),
        ),
    ]
}

fn build_regex(patterns: &[&str]) -> Result<Regex, String> {
    Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .configure(
            Regex::config()
                .match_kind(MatchKind::LeftmostFirst)
                .utf8_empty(false)
                .hybrid_cache_capacity(32 << 20),
        )
        .build_many(patterns)
        .map_err(|e| e.to_string())
}

/// The pattern table as a forward lazy DFA, searched anchored at each candidate start of a token (see
/// [`Anchors::search`]). Unanchored multi-pattern search has to track every possible start at once, and with
/// this table's counted repetitions its lazy DFA keeps meeting new states (every random id built new ones);
/// anchored at one start, the states are few and soon all built.
struct Anchors {
    dfa: DFA,
    caches: Pool<DfaCache, CacheFn>,
    /// Per byte, where a match can start with it: anywhere ([`FREE`]), only where `\b` holds before it
    /// ([`AT_BOUNDARY`]), or nowhere (0). The DFA dies on the others right away; this saves the call.
    first: [u8; 256],
}

/// See [`Anchors::first`].
const FREE: u8 = 1;
const AT_BOUNDARY: u8 = 2;

type CacheFn = Box<dyn Fn() -> DfaCache + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>;

impl Anchors {
    fn new(patterns: &[&str]) -> Result<Anchors, String> {
        // What `DFA::builder().syntax(..).build_many(patterns)` does, with the parsing (two fifths of a build,
        // which is most of a `maskgate mask` start-up) split over two threads.
        let config = syntax::Config::new().unicode(false).utf8(false);
        let parse = |ps: &[&str]| syntax::parse_many_with(ps, &config).map_err(|e| e.to_string());
        let mid = patterns.len() / 2;
        let (first_half, second_half) = std::thread::scope(|s| {
            let second = s.spawn(|| parse(&patterns[mid..]));
            (parse(&patterns[..mid]), second.join())
        });
        let mut hirs = first_half?;
        hirs.extend(second_half.map_err(|_| "the pattern parser panicked".to_string())??);
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().which_captures(thompson::WhichCaptures::None))
            .build_many_from_hir(&hirs)
            .map_err(|e| e.to_string())?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::LeftmostFirst)
                    .cache_capacity(8 << 20),
            )
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        let first = first_bytes(dfa.get_nfa());
        let d2 = dfa.clone();
        let caches = Pool::new(Box::new(move || d2.create_cache()) as CacheFn);
        Ok(Anchors { dfa, caches, first })
    }

    /// Whether a match may start at `hay[x]` (what [`Anchors::first`] tells; the DFA sees the byte before as
    /// its look-behind).
    #[inline]
    fn may_start(&self, hay: &[u8], x: usize) -> bool {
        let b = hay[x];
        let f = self.first[b as usize];
        f & FREE != 0 || (f != 0 && (x > 0 && is_word(hay[x - 1])) != is_word(b))
    }

    /// Whether rule `rule` is the only one that can match a text made of `alphabet` alone: the NFA reaches no
    /// other rule's match state on those bytes (look-around assertions taken as holding, so "can" is a superset).
    fn only_rule_within(&self, rule: usize, alphabet: &[u8]) -> bool {
        use thompson::State;
        let nfa = self.dfa.get_nfa();
        let within = |a: u8, b: u8| alphabet.iter().any(|&c| (a..=b).contains(&c));
        let mut seen = vec![false; nfa.states().len()];
        let mut todo = vec![nfa.start_anchored()];
        while let Some(id) = todo.pop() {
            if std::mem::replace(&mut seen[id.as_usize()], true) {
                continue;
            }
            match nfa.state(id) {
                State::ByteRange { trans } if within(trans.start, trans.end) => todo.push(trans.next),
                State::ByteRange { .. } => {}
                State::Sparse(t) => {
                    todo.extend(t.transitions.iter().filter(|t| within(t.start, t.end)).map(|t| t.next))
                }
                State::Dense(t) => todo.extend(alphabet.iter().map(|&c| t.transitions[c as usize])),
                State::Look { next, .. } | State::Capture { next, .. } => todo.push(*next),
                State::Union { alternates } => todo.extend(alternates.iter().copied()),
                State::BinaryUnion { alt1, alt2 } => todo.extend([*alt1, *alt2]),
                State::Match { pattern_id } if pattern_id.as_usize() != rule => return false,
                State::Match { .. } | State::Fail => {}
            }
        }
        true
    }

    /// Whether a match may start with byte `b` after `before` (a byte, or the start of the text), as the DFA
    /// itself tells: its start state in that context, then one step. What [`first_bytes`] must cover.
    #[cfg(test)]
    fn may_start_by_dfa(&self, cache: &mut DfaCache, before: Option<u8>, b: u8) -> bool {
        let hay = match before {
            Some(p) => vec![p, b],
            None => vec![b],
        };
        let input = Input::new(&hay).range(hay.len() - 1..).anchored(Anchored::Yes);
        match self.dfa.start_state_forward(cache, &input) {
            Ok(s) => !self.dfa.next_state(cache, s, b).is_ok_and(|t| t.is_dead()),
            Err(_) => true,
        }
    }

    /// The leftmost-first match anchored at `x`, as `(pattern, start, end)`; `Err` when the DFA gave up.
    fn at(&self, hay: &[u8], x: usize) -> Result<Option<(usize, usize, usize)>, ()> {
        let mut cache = self.caches.get();
        let input = Input::new(hay).range(x..).anchored(Anchored::Yes);
        match self.dfa.try_search_fwd(&mut cache, &input) {
            Ok(m) => Ok(m.map(|m| (m.pattern().as_usize(), x, m.offset()))),
            Err(_) => Err(()),
        }
    }

    /// The leftmost-first match starting at or after `at`: the first start with an anchored match, and its
    /// leftmost-first match there, as `(pattern, start, end)`. `None` also when the DFA gave up (then `Err`).
    fn search(&self, hay: &[u8], at: usize) -> Result<Option<(usize, usize, usize)>, ()> {
        let mut cache = self.caches.get();
        for x in at..hay.len() {
            if !self.may_start(hay, x) {
                continue;
            }
            let input = Input::new(hay).range(x..).anchored(Anchored::Yes);
            match self.dfa.try_search_fwd(&mut cache, &input) {
                Ok(Some(m)) => return Ok(Some((m.pattern().as_usize(), x, m.offset()))),
                Ok(None) => {}
                Err(_) => return Err(()),
            }
        }
        Ok(None)
    }
}

/// Bytes an anchored match of `nfa` may start with ([`Anchors::first`]): the byte ranges of the first consuming
/// states reachable from its anchored start. A range reached only through a `\b` assertion is marked
/// [`AT_BOUNDARY`]: nearly every pattern starts with one, so a start inside a word (the `0` of `20141201` in a
/// version string) is not tried. Other look-around assertions are taken as holding (a superset: a candidate start
/// costs a search, never a miss). Walking the NFA takes microseconds; asking the lazy DFA for 768 transitions
/// took about a tenth of a `maskgate mask` start-up.
fn first_bytes(nfa: &thompson::NFA) -> [u8; 256] {
    use regex_automata::util::look::Look;
    use thompson::State;
    let mut first = [0u8; 256];
    // Each state once without and once after a `\b` on the way to it.
    let mut seen = vec![[false; 2]; nfa.states().len()];
    let mut todo = vec![(nfa.start_anchored(), false)];
    while let Some((id, boundary)) = todo.pop() {
        if std::mem::replace(&mut seen[id.as_usize()][boundary as usize], true) {
            continue;
        }
        let flag = if boundary { AT_BOUNDARY } else { FREE };
        let mut mark = |a: u8, b: u8| first[a as usize..=b as usize].iter_mut().for_each(|f| *f |= flag);
        match nfa.state(id) {
            State::ByteRange { trans } => mark(trans.start, trans.end),
            State::Sparse(t) => t.transitions.iter().for_each(|t| mark(t.start, t.end)),
            // An empty match, or a state kept dense: any byte.
            State::Dense(_) | State::Match { .. } => mark(0, 255),
            State::Look { look, next } => todo.push((*next, boundary || *look == Look::WordAscii)),
            State::Capture { next, .. } => todo.push((*next, boundary)),
            State::Union { alternates } => todo.extend(alternates.iter().map(|&a| (a, boundary))),
            State::BinaryUnion { alt1, alt2 } => todo.extend([(*alt1, boundary), (*alt2, boundary)]),
            State::Fail => {}
        }
    }
    first
}

// ---------------------------------------------------------------------------------------------------------------
// Context rules for the ambiguous and name kinds

/// Ambiguous shapes checked on tokens that no pattern claimed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Account,
    Uuid,
    Secret40,
    Hex64,
    HostedZone,
    CloudFrontId,
    ApiGwId,
    Mac,
    SessionTokenLong,
}

/// Keywords (lower-case, alphanumerics only) that must occur shortly before a candidate of each shape.
fn shape_keywords(shape: Shape) -> &'static [&'static str] {
    match shape {
        Shape::Account => &["account", "acct", "owner", "registryid", "principal"],
        Shape::Uuid => &["kms", "keyid", "cmk", "masterkey", "encryptionkey"],
        Shape::Secret40 => &["secret", "secretaccesskey", "secretkey"],
        Shape::Hex64 => &["canonical", "owner", "grant"],
        Shape::HostedZone => &["hostedzone", "zoneid", "route53", "zone"],
        Shape::CloudFrontId => &["distribution", "cloudfront"],
        Shape::ApiGwId => &["restapi", "apiid", "apigateway", "apigw", "httpapi", "executeapi"],
        Shape::Mac => &["macaddress"],
        Shape::SessionTokenLong => &["sessiontoken", "securitytoken"],
    }
}

/// A letter every keyword of `shape` holds (checked by a test), when there is one that is not in most words: a
/// text without it holds none of them.
fn keyword_letter(shape: Shape) -> Option<u8> {
    match shape {
        Shape::Uuid | Shape::SessionTokenLong => Some(b'k'),
        Shape::ApiGwId => Some(b'p'),
        Shape::CloudFrontId => Some(b'u'),
        Shape::Mac => Some(b'm'),
        Shape::Account | Shape::Secret40 | Shape::Hex64 | Shape::HostedZone => None,
    }
}

/// Whether `norm` (normalized text: a key, a window before or after a value) holds a keyword of `shape`.
fn holds_keyword(norm: &[u8], shape: Shape) -> bool {
    shape_keywords(shape)
        .iter()
        .any(|k| memchr::memmem::find(norm, k.as_bytes()).is_some())
}

/// A window of text, normalized ([`normalize`]) into a zero-padded buffer for [`Window::holds_keyword`].
struct Window {
    buf: [u8; Window::CAP + 2],
    len: usize,
}

impl Window {
    /// The most bytes a window holds.
    const CAP: usize = 64;

    /// `raw` (at most [`Window::CAP`] bytes) normalized, without a branch per byte.
    fn new(raw: &[u8]) -> Window {
        let mut w = Window {
            buf: [0; Window::CAP + 2],
            len: 0,
        };
        for &c in &raw[..raw.len().min(Window::CAP)] {
            // 0 for the bytes `normalize` drops, which no keyword holds.
            let t = NORM[c as usize];
            w.buf[w.len] = t;
            w.len += (t != 0) as usize;
        }
        w.buf[w.len] = 0;
        w
    }

    fn norm(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// [`holds_keyword`] on the window: each keyword's first three bytes are looked for at every position at
    /// once (fixed-size loops the compiler vectorises), and only a window that has them is searched. Most
    /// windows have none: a UUID in a log line took ~2,000 instructions with a substring search per keyword.
    fn holds_keyword(&self, shape: Shape) -> bool {
        shape_keywords(shape).iter().any(|k| {
            let k = k.as_bytes();
            let mut any = false;
            for i in 0..Window::CAP {
                any |= (self.buf[i] == k[0]) & (self.buf[i + 1] == k[1]) & (self.buf[i + 2] == k[2]);
            }
            any && memchr::memmem::find(self.norm(), k).is_some()
        })
    }
}

impl Shape {
    /// Canonical user ids and CloudFront ids: in pasted JSON their keyword names the enclosing object (`"Owner":
    /// {`, `"Distribution": {`), so a parent key or the lines above count as context. Ordinary text rarely holds
    /// these shapes.
    fn named_by_enclosing(self) -> bool {
        matches!(self, Shape::Hex64 | Shape::CloudFrontId)
    }
}

/// A JSON value of an ambiguous shape whose key is not one of [`KEYED`] but holds the shape's keyword, as the
/// same key and value in text would (`"InstanceOwnerId": "123456789012"`, `"DestinationKeyId": "<uuid>"`): the
/// key is the value's context. For the shapes [`Shape::named_by_enclosing`], the parent key counts too
/// (`{"Owner": {"ID": "<64 hex>"}}`, `"Grantee"`). `key_norm` is the normalized key.
fn keyword_key(value: &[u8], key_norm: &[u8], parent: Option<&str>) -> Option<(KindId, ValueShape)> {
    let v = value.strip_prefix(b"/hostedzone/").unwrap_or(value);
    let shape = shape_of(v)?;
    let mut found = holds_keyword(key_norm, shape);
    if !found && shape.named_by_enclosing() {
        if let Some(p) = parent {
            let mut parent_norm = Vec::new();
            normalize(p.as_bytes(), &mut parent_norm);
            found = holds_keyword(&parent_norm, shape);
        }
    }
    found.then(|| (shape_kind(shape), ValueShape::Ambiguous(shape)))
}

/// An account keyword in the [`AFTER`] bytes after an account-id-shaped value, on the same line: `123456789012
/// (prod account)`, `123456789012 is our account`. (Only for this shape: twelve digits are rarely anything else
/// when the word follows, while a UUID or 64 hex digits followed by "key" or "owner" often are.)
fn account_word_after(text: &[u8], e: usize) -> bool {
    let mut window = &text[e..(e + AFTER).min(text.len())];
    if let Some(nl) = memchr::memchr(b'\n', window) {
        window = &window[..nl];
    }
    Window::new(window).holds_keyword(Shape::Account)
}

/// How far [`account_word_after`] looks.
const AFTER: usize = 32;

/// How far back [`Detector::context_holds`] looks, over lines, for the object a canonical user id or a CloudFront
/// id is in: `"Grantee": {` with two or three indented members before `"ID"`.
const ENCLOSING: usize = 256;

fn shape_kind(shape: Shape) -> KindId {
    match shape {
        Shape::Account => kid!("account_id"),
        Shape::Uuid => kid!("kms_key_id"),
        Shape::Secret40 => kid!("secret_key"),
        Shape::Hex64 => kid!("canonical_user_id"),
        Shape::HostedZone => kid!("hosted_zone_id"),
        Shape::CloudFrontId => kid!("cloudfront_distribution_id"),
        Shape::ApiGwId => kid!("apigw_id"),
        Shape::Mac => kid!("mac_address"),
        Shape::SessionTokenLong => kid!("session_token"),
    }
}

fn all(b: &[u8], f: impl Fn(u8) -> bool) -> bool {
    // Without an early exit, so the compiler vectorises it: the values asked about are short, and most of those
    // with the right length have the shape (a UUID, 64 hex digits), so an exit would rarely come early anyway.
    b.iter().fold(true, |ok, &c| ok & f(c))
}

fn is_hex_lower(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

fn shape_of(v: &[u8]) -> Option<Shape> {
    // Only the shorter shapes ask (not the 100+ byte ones: a base64 blob is read once, not twice).
    let has_digit = || v.iter().any(u8::is_ascii_digit);
    match v.len() {
        12 if all(v, |c| c.is_ascii_digit()) => Some(Shape::Account),
        14 if v[4] == b'-'
            && v[9] == b'-'
            && all(&v[..4], |c| c.is_ascii_digit())
            && all(&v[5..9], |c| c.is_ascii_digit())
            && all(&v[10..], |c| c.is_ascii_digit()) =>
        {
            Some(Shape::Account)
        }
        36 if is_uuid(v) => Some(Shape::Uuid),
        40 if is_secret40(v) => Some(Shape::Secret40),
        64 if all(v, is_hex_lower) => Some(Shape::Hex64),
        17 if is_mac(v) => Some(Shape::Mac),
        10 if has_digit()
            && v.iter().any(u8::is_ascii_lowercase)
            && all(v, |c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
        {
            Some(Shape::ApiGwId)
        }
        13..=15 if v[0] == b'E' && has_digit() && all(&v[1..], |c| c.is_ascii_uppercase() || c.is_ascii_digit()) => {
            Some(Shape::CloudFrontId)
        }
        8..=33 if v[0] == b'Z' && has_digit() && all(&v[1..], |c| c.is_ascii_uppercase() || c.is_ascii_digit()) => {
            Some(Shape::HostedZone)
        }
        // (A block at a time, to stop at the first one that fails: a JSON value of this length is more often
        // the 16 KB text of a message than a token.)
        n if n >= 100
            && v.chunks(64).all(|b| {
                all(b, |c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+' | b'=' | b'%')
                })
            }) =>
        {
            Some(Shape::SessionTokenLong)
        }
        _ => None,
    }
}

fn is_uuid(v: &[u8]) -> bool {
    // The dashes first (most candidates fail there), then two loops the compiler vectorises: hex digits and
    // dashes only, and no dash but those four.
    v.len() == 36
        && v[8] == b'-'
        && v[13] == b'-'
        && v[18] == b'-'
        && v[23] == b'-'
        && v.iter().fold(true, |ok, &c| ok & (c.is_ascii_hexdigit() | (c == b'-')))
        && v.iter().fold(0, |n, &c| n + (c == b'-') as u32) == 4
}

fn is_secret40(v: &[u8]) -> bool {
    v.len() == 40
        && all(v, |c| c.is_ascii_alphanumeric() || c == b'/' || c == b'+')
        && !all(v, |c| c.is_ascii_hexdigit())
        && v.iter().any(u8::is_ascii_uppercase)
        && v.iter().any(u8::is_ascii_lowercase)
}

fn is_mac(v: &[u8]) -> bool {
    v.len() == 17
        && v.iter()
            .enumerate()
            .all(|(i, &c)| if i % 3 == 2 { c == b':' } else { c.is_ascii_hexdigit() })
}

/// Can `tok` hold a match of the pattern table? A necessary condition: an `aws`/`amz`/`s3` anchor (ARNs, hosts,
/// URIs, placeholders, presigned URLs, log groups), a `-` followed by 8+ alphanumerics with a digit (resource
/// ids), four dotted numbers (IPv4), `::` or seven `:` (IPv6), and the few other shapes of the table. Ordinary
/// log and code tokens (`2024-06-15T10:30:45Z`, `http-nio-8080-exec-7`, `3.11.4`) fail it and never reach the
/// regex.
///
/// Every condition says "yes" alone, so they are checked one after another, each over only the bytes it needs:
/// counts in one branch-free pass, then the letter anchors at their first letters, the dash runs at the dashes.
/// A token of [`LONG_TOKEN`] bytes or more (a base64 blob) is read from its class masks instead
/// ([`interesting_long`]). The first version, a state machine over every byte, is kept as the tests' reference.
fn interesting(tok: &[u8]) -> bool {
    let n = tok.len();
    if n < 6 {
        return false;
    }
    if prefix_routed(tok) || resource_id_end(tok) {
        return true;
    }
    if n >= LONG_TOKEN {
        return interesting_long(tok);
    }
    // Mixed-case base64 credentials with a fixed prefix: session tokens, Bedrock keys (at their first letters).
    let prefix_at = |i: usize| CREDENTIAL_PREFIXES.iter().any(|p| tok[i..].starts_with(p));
    if n >= 24 && memchr::memchr3_iter(b'I', b'A', b'F', tok).any(prefix_at) {
        return true;
    }
    // One pass of counts (branch-free: the compiler vectorises it).
    let (mut digits, mut dots, mut colons, mut ud) = (0u32, 0u32, 0u32, 0u32);
    for &c in tok {
        let digit = c.wrapping_sub(b'0') < 10;
        digits += digit as u32;
        dots += (c == b'.') as u32;
        colons += (c == b':') as u32;
        ud += (digit || c.wrapping_sub(b'A') < 26) as u32;
    }
    // Four dotted numbers; `::` or seven `:`.
    if digits >= 4 && dots >= 3 {
        return true;
    }
    if digits > 0 && (colons >= 7 || (colons >= 2 && memchr::memmem::find(tok, b"::").is_some())) {
        return true;
    }
    // Sixteen capitals or digits in a row (access keys, unique ids).
    if ud >= 16 {
        let mut run = 0u32;
        let mut longest = 0u32;
        for &c in tok {
            let hit = c.wrapping_sub(b'0') < 10 || c.wrapping_sub(b'A') < 26;
            run = (run + 1) * hit as u32;
            longest = longest.max(run);
        }
        if longest >= 16 {
            return true;
        }
    }
    // "aws", "amz", "s3" in any case; "ip-", "alias/", "cloudfront", "internal", "beanstalk": at the letters
    // they start with, with a fourth byte after them.
    const FIRST: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 5 {
            let c = b"asicb"[i];
            t[c as usize] = true;
            t[c.to_ascii_uppercase() as usize] = true;
            i += 1;
        }
        t
    };
    let mut placeholder_like = false;
    for i in 0..n - 3 {
        let c = tok[i];
        if !FIRST[c as usize] {
            continue;
        }
        if letter_anchor(tok, i, &mut placeholder_like) {
            return true;
        }
    }
    (placeholder_like && digits >= 3) || dash_run(tok) || cognito(tok)
}

/// The fixed starts of mixed-case base64 credentials: session tokens, Bedrock keys.
pub(super) const CREDENTIAL_PREFIXES: [&[u8]; 6] = [b"IQoJb3", b"AgoJb3", b"FwoGZX", b"FQoGZX", b"AQoDYX", b"ABSK"];

/// The parameters of a query string or a form body in the token `[s, e)` whose key is a known one: the span of
/// the value after each `key=` between `?` or `&`, with the key's kind and shape.
fn query_params(text: &[u8], s: usize, e: usize) -> impl Iterator<Item = (usize, usize, KindId, ValueShape)> + '_ {
    let ends = memchr::memchr2_iter(b'&', b'?', &text[s..e])
        .map(move |p| s + p)
        .chain([e]);
    let mut from = s;
    ends.filter_map(move |end| {
        let param = (from, end);
        from = end + 1;
        let eq = param.0 + memchr::memchr(b'=', &text[param.0..param.1])?;
        let (kind, shape) = fast::key_lookup(&text[param.0..eq])?;
        Some((eq + 1, end, kind, shape))
    })
}

/// From this length on, [`interesting`] reads a token's class masks ([`interesting_long`]) rather than its bytes.
const LONG_TOKEN: usize = 128;

/// [`interesting`] on a long token (base64 blobs, long URLs and paths), from the class masks of its 64-byte
/// blocks ([`crate::classify`]), as `fast::interesting_exact` does for a token of one or two blocks: counts are
/// popcounts, a run of sixteen capitals or digits is found in each pair of blocks with shifts, and the letter
/// anchors and credential prefixes are checked only where the three-byte anchor mask (a superset) has a bit.
fn interesting_long(tok: &[u8]) -> bool {
    let n = tok.len();
    let cls = Classifier::new();
    let (mut digits, mut dots, mut colons) = (0u32, 0u32, 0u32);
    let (mut double_colon, mut placeholder_like) = (false, false);
    let (mut prev_ud, mut prev_colon) = (0u64, 0u64);
    for b in 0..n.div_ceil(64) {
        let at = 64 * b;
        // Past the token's end the block reads zero bytes, which are in no class.
        let m = cls.block(tok, at as isize);
        digits += m.d.count_ones();
        dots += m.dot.count_ones();
        let colon = m.colon;
        colons += colon.count_ones();
        double_colon |= colon & ((colon << 1) | (prev_colon >> 63)) != 0;
        prev_colon = colon;
        // Sixteen capitals or digits in a row, within this block and the one before.
        let ud = m.u | m.d;
        let x = prev_ud as u128 | (ud as u128) << 64;
        let x = x & (x >> 1);
        let x = x & (x >> 2);
        let x = x & (x >> 4);
        if x & (x >> 8) != 0 {
            return true;
        }
        prev_ud = ud;
        let mut cands = m.tri;
        while cands != 0 {
            let i = at + cands.trailing_zeros() as usize;
            cands &= cands - 1;
            if CREDENTIAL_PREFIXES.iter().any(|p| tok[i..].starts_with(p)) {
                return true;
            }
            if i + 3 < n && letter_anchor(tok, i, &mut placeholder_like) {
                return true;
            }
        }
    }
    (digits >= 4 && dots >= 3)
        || (digits > 0 && (colons >= 7 || double_colon))
        || (placeholder_like && digits >= 3)
        || dash_run(tok)
        || cognito(tok)
}

/// The letter anchor starting at `tok[i]` (with a fourth byte after it): `aws` followed by `: . / - %`,
/// `amz-`, `s3:`, `s3/`, `s3-`/`s3.` at a word start, `ip-`, `alias/`, `cloudfront`, `internal`, `beanstalk`,
/// in any case. `aws_` (a placeholder's start) sets `placeholder_like` instead.
pub(super) fn letter_anchor(tok: &[u8], i: usize, placeholder_like: &mut bool) -> bool {
    let rest = &tok[i..];
    let w = [rest[0] | 0x20, rest[1] | 0x20, rest[2] | 0x20];
    match &w {
        b"aws" => match rest[3] {
            b':' | b'.' | b'/' | b'-' | b'%' => true,
            b'_' => {
                *placeholder_like = true;
                false
            }
            _ => false,
        },
        b"amz" => rest[3] == b'-',
        b"ali" => rest.starts_with(b"alias/"),
        b"clo" => rest.len() >= 10 && rest[..10].eq_ignore_ascii_case(b"cloudfront"),
        b"int" => rest.starts_with(b"internal"),
        b"bea" => rest.starts_with(b"beanstalk"),
        b"s3-" | b"s3." => i == 0 || !tok[i - 1].is_ascii_alphanumeric(),
        b"s3:" | b"s3/" | b"ip-" => true,
        _ => false,
    }
}

/// A `-`, then eight or more alphanumerics (up to the next other byte) holding a digit, or no letter but `a` to
/// `f` (resource ids).
fn dash_run(tok: &[u8]) -> bool {
    memchr::memchr_iter(b'-', tok).any(|d| dash_run_at(tok, d))
}

/// [`dash_run`] at the dash at `d`.
fn dash_run_at(tok: &[u8], d: usize) -> bool {
    let run = &tok[d + 1..];
    let run = &run[..run.iter().position(|c| !c.is_ascii_alphanumeric()).unwrap_or(run.len())];
    run.len() >= 8
        && (run.iter().any(u8::is_ascii_digit)
            || run
                .iter()
                .all(|c| !c.is_ascii_alphabetic() || matches!(c.to_ascii_lowercase(), b'a'..=b'f')))
        && !uuid_last_dash(tok, d)
}

/// The dash at `d` is a UUID's last (before its twelve-digit group), and the UUID starts the token or follows
/// a `=` (`request_id=<uuid>`, the request and trace ids of logs): no rule's match needs that dash. A match
/// through it would start at one of the UUID's groups (or before, where the rule has its own anchor), and no id
/// prefix is made of four (or eight) hex digits; the rules with a UUID in them have an anchor before it
/// (`arn:`…`:key/<uuid>`), except a Cognito identity pool (`us-east-1:<uuid>`), hence only after `=`.
pub(super) fn uuid_last_dash(tok: &[u8], d: usize) -> bool {
    d >= 23
        && tok.len() >= d + 13
        && (d == 23 || tok[d - 24] == b'=')
        && is_uuid(&tok[d - 23..d + 13])
        && tok.get(d + 13).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// The shape most ids of AWS API output have, whole strings there (`i-0abc…`, `subnet-…`, `vpc-…`): a
/// [`dash_run`] after the token's last dash. Checked first, at that one dash: `interesting` would find it only
/// after its other conditions (~680 instructions for such an id).
fn resource_id_end(tok: &[u8]) -> bool {
    memchr::memrchr(b'-', tok).is_some_and(|d| dash_run_at(tok, d))
}

/// `-<digit>_`: a Cognito user pool (`us-east-1_AbC123xyz`).
fn cognito(tok: &[u8]) -> bool {
    memchr::memchr_iter(b'_', tok).any(|u| u >= 2 && tok[u - 2] == b'-' && tok[u - 1].is_ascii_digit())
}

/// Ids whose prefix alone sends a token at its start to the patterns, since their bodies may have neither digits
/// nor hex (which the other conditions of [`interesting`] look for): organization roots, units, ids, policies
/// (`r-`, `ou-`, `o-`, `p-`), AppSync keys, EMR clusters, Cloud Map and Direct Connect ids.
pub(crate) fn prefix_routed(tok: &[u8]) -> bool {
    // (Slice patterns: a few byte compares for the many tokens that start with one of these letters.)
    matches!(
        tok,
        [b'r' | b'o' | b'p' | b'j', b'-', ..]
            | [b'o', b'u', b'-', ..]
            | [b'n', b's', b'-', ..]
            | [b'd', b'a', b'2', b'-', ..]
            | [b's', b'r', b'v', b'-', ..]
            | [b'd', b'x', b'g', b'w', b'-', ..]
            | [b'd', b'x', b'c', b'o', b'n', b'-', ..]
            | [b'd', b'x', b'l', b'a', b'g', b'-', ..]
            | [b'd', b'x', b'v', b'i', b'f', b'-', ..]
    )
}

/// The first version of [`interesting`]: one pass, a state machine per byte. Its reference in the tests.
#[cfg(test)]
fn interesting_v1(tok: &[u8]) -> bool {
    let n = tok.len();
    if n < 6 {
        return false;
    }
    // Mixed-case base64 credentials with a fixed prefix: session tokens, Bedrock keys.
    if n >= 24
        && CREDENTIAL_PREFIXES
            .iter()
            .any(|p| memchr::memmem::find(tok, p).is_some())
    {
        return true;
    }
    let (mut dots, mut colons, mut double_colon, mut digits) = (0u32, 0u32, false, 0u32);
    let mut run = 0usize; // alphanumerics since the last '-'
    let mut run_digit = false; // a digit in the run, or hex letters only (`vpc-aaaabbbb`, a UUID in capitals)
    let mut run_hex = true;
    let mut after_dash = false;
    let mut dash_at = 0; // where the run began
                         // At the end of a run: a `-`, then eight or more alphanumerics with a digit or hex letters only, unless the
                         // dash is a UUID's last.
    let dash_anchor = |after_dash: bool, run: usize, digit_or_hex: bool, dash_at: usize| {
        after_dash && run >= 8 && digit_or_hex && !uuid_last_dash(tok, dash_at)
    };
    let mut upper_run = 0usize; // [A-Z0-9] run: access keys, unique ids
    let mut placeholder_like = false;
    for i in 0..n {
        let c = tok[i];
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            upper_run += 1;
            if upper_run >= 16 {
                return true;
            }
        } else {
            upper_run = 0;
        }
        match c {
            b'0'..=b'9' => {
                digits += 1;
                run += 1;
                run_digit = true;
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                run += 1;
                run_hex &= matches!(c.to_ascii_lowercase(), b'a'..=b'f');
                // "aws", "amz", "s3" in any case; "ip-", "alias/", "cloudfront", "internal", "beanstalk" (their
                // first letters first: most letters start none, which matters on long base64 tokens).
                if i + 3 < n && matches!(c | 0x20, b'a' | b's' | b'i' | b'c' | b'b') {
                    let w = [c | 0x20, tok[i + 1] | 0x20, tok[i + 2] | 0x20];
                    if matches!(
                        &w,
                        b"aws"
                            | b"amz"
                            | b"s3:"
                            | b"s3/"
                            | b"s3."
                            | b"s3-"
                            | b"ip-"
                            | b"ali"
                            | b"clo"
                            | b"int"
                            | b"bea"
                    ) {
                        let rest = &tok[i..];
                        let hit = match &w {
                            b"aws" => match rest[3] {
                                b':' | b'.' | b'/' | b'-' | b'%' => true,
                                b'_' => {
                                    placeholder_like = true;
                                    false
                                }
                                _ => false,
                            },
                            b"amz" => rest[3] == b'-',
                            b"ali" => rest.starts_with(b"alias/"),
                            b"clo" => rest.len() >= 10 && rest[..10].eq_ignore_ascii_case(b"cloudfront"),
                            b"int" => rest.starts_with(b"internal"),
                            b"bea" => rest.starts_with(b"beanstalk"),
                            b"s3-" | b"s3." => i == 0 || !tok[i - 1].is_ascii_alphanumeric(),
                            _ => true,
                        };
                        if hit {
                            return true;
                        }
                    }
                }
            }
            b'-' => {
                if dash_anchor(after_dash, run, run_digit || run_hex, dash_at) {
                    return true;
                }
                after_dash = true;
                dash_at = i;
                run = 0;
                run_digit = false;
                run_hex = true;
            }
            b'.' => {
                dots += 1;
                if dash_anchor(after_dash, run, run_digit || run_hex, dash_at) {
                    return true;
                }
                after_dash = false;
            }
            b':' => {
                if i > 0 && tok[i - 1] == b':' {
                    double_colon = true;
                }
                colons += 1;
                // Cognito identity pool: `us-east-1:uuid`.
                if dash_anchor(after_dash, run, run_digit || run_hex, dash_at) {
                    return true;
                }
                after_dash = false;
            }
            b'_' => {
                // Cognito user pool: `us-east-1_AbC123xyz`.
                if i >= 2 && tok[i - 2] == b'-' && tok[i - 1].is_ascii_digit() {
                    return true;
                }
                if dash_anchor(after_dash, run, run_digit || run_hex, dash_at) {
                    return true;
                }
                after_dash = false;
            }
            _ => {
                if dash_anchor(after_dash, run, run_digit || run_hex, dash_at) {
                    return true;
                }
                after_dash = false;
            }
        }
    }
    if dash_anchor(after_dash, run, run_digit || run_hex, dash_at) {
        return true;
    }
    (dots >= 3 && digits >= 4)
        || (digits > 0 && (double_colon || colons >= 7))
        || (placeholder_like && digits >= 3)
        || prefix_routed(tok)
}

/// `normalize(raw) == kw` without allocating (`kw` is lower-case alphanumerics).
fn norm_eq(raw: &[u8], kw: &str) -> bool {
    if raw.len() < kw.len() || raw.len() > kw.len() + 4 {
        return false;
    }
    let mut it = raw
        .iter()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase);
    kw.bytes().all(|k| it.next() == Some(k)) && it.next().is_none()
}

/// Lower-cases and keeps alphanumerics: `--Owner-Ids` → `ownerids`.
fn normalize(s: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend(s.iter().map(|&c| NORM[c as usize]).filter(|&t| t != 0));
}

/// What [`normalize`] makes of each byte: a digit or lower-case letter, the lower case of a capital, and 0 for
/// every other byte (dropped).
static NORM: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() {
            t[c] = b.to_ascii_lowercase();
        }
        c += 1;
    }
    t
};

/// JSON keys and CLI flags (normalized) that make a whole value an identifier of a kind, with the shape the
/// value must have.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ValueShape {
    Ambiguous(Shape),
    /// A customer-chosen name: `[A-Za-z0-9][A-Za-z0-9._/+=,@#-]*`, 1..=255.
    Name,
    /// An S3 bucket name (3..=63, lower-case, digits, `.`, `-`).
    Bucket,
}

const KEYED: &[(&str, &str, ValueShape)] = {
    use Shape::*;
    use ValueShape::*;
    &[
        ("accountid", "account_id", Ambiguous(Account)),
        ("awsaccountid", "account_id", Ambiguous(Account)),
        ("ownerid", "account_id", Ambiguous(Account)),
        ("ownerids", "account_id", Ambiguous(Account)),
        ("owner", "account_id", Ambiguous(Account)),
        ("sourceaccount", "account_id", Ambiguous(Account)),
        ("awssourceaccount", "account_id", Ambiguous(Account)),
        ("principalaccount", "account_id", Ambiguous(Account)),
        ("awsprincipalaccount", "account_id", Ambiguous(Account)),
        ("registryid", "account_id", Ambiguous(Account)),
        ("account", "account_id", Ambiguous(Account)),
        ("aws", "account_id", Ambiguous(Account)),
        ("targetaccountid", "account_id", Ambiguous(Account)),
        // Glue's Data Catalog id is the account id; Organizations and Security Hub list member accounts.
        ("catalogid", "account_id", Ambiguous(Account)),
        ("memberaccounts", "account_id", Ambiguous(Account)),
        ("keyid", "kms_key_id", Ambiguous(Uuid)),
        ("kmskeyid", "kms_key_id", Ambiguous(Uuid)),
        ("targetkeyid", "kms_key_id", Ambiguous(Uuid)),
        ("ssekmskeyid", "kms_key_id", Ambiguous(Uuid)),
        ("kmsmasterkeyid", "kms_key_id", Ambiguous(Uuid)),
        ("secretaccesskey", "secret_key", Ambiguous(Secret40)),
        ("awssecretaccesskey", "secret_key", Ambiguous(Secret40)),
        ("secretkey", "secret_key", Ambiguous(Secret40)),
        ("sessiontoken", "session_token", Ambiguous(SessionTokenLong)),
        ("awssessiontoken", "session_token", Ambiguous(SessionTokenLong)),
        ("securitytoken", "session_token", Ambiguous(SessionTokenLong)),
        ("hostedzoneid", "hosted_zone_id", Ambiguous(HostedZone)),
        ("hostedzone", "hosted_zone_id", Ambiguous(HostedZone)),
        ("distributionid", "cloudfront_distribution_id", Ambiguous(CloudFrontId)),
        ("restapiid", "apigw_id", Ambiguous(ApiGwId)),
        ("apiid", "apigw_id", Ambiguous(ApiGwId)),
        ("macaddress", "mac_address", Ambiguous(Mac)),
        ("bucket", "s3_bucket", Bucket),
        ("bucketname", "s3_bucket", Bucket),
        ("functionname", "lambda_function", Name),
        ("tablename", "dynamodb_table", Name),
        ("dbinstanceidentifier", "rds_instance", Name),
        ("dbclusteridentifier", "rds_instance", Name),
        ("cacheclusterid", "elasticache_cluster", Name),
        ("replicationgroupid", "elasticache_cluster", Name),
        ("clusteridentifier", "redshift_cluster", Name),
        ("rolename", "iam_role_name", Name),
        ("username", "iam_user_name", Name),
        ("stackname", "stack_name", Name),
        ("queuename", "sqs_queue_name", Name),
        ("topicname", "sns_topic_name", Name),
        ("repositoryname", "ecr_repository", Name),
        ("secretid", "secret_name", Name),
        ("jobname", "glue_job", Name),
        ("clustername", "ecs_cluster", Name),
        ("cluster", "ecs_cluster", Name),
        ("loggroupname", "log_group", Name),
        ("parametername", "ssm_parameter", Name),
    ]
};

/// `(keyword, optional filler, kind, shape)`: in prose, a name right after `keyword` (or `keyword filler`) is
/// an identifier of `kind`: "S3 bucket my-app-logs", "RDS instance prod-db-1".
const PROSE_NAMES: &[(&str, &[&str], &str, ValueShape)] = &[
    ("bucket", &[], "s3_bucket", ValueShape::Bucket),
    ("buckets", &[], "s3_bucket", ValueShape::Bucket),
    ("s3", &["bucket", "buckets", "logs"], "s3_bucket", ValueShape::Bucket),
    (
        "rds",
        &["instance", "cluster", "database", "db"],
        "rds_instance",
        ValueShape::Name,
    ),
    ("lambda", &["function"], "lambda_function", ValueShape::Name),
    ("dynamodb", &["table"], "dynamodb_table", ValueShape::Name),
    (
        "elasticache",
        &["cluster", "redis", "memcached"],
        "elasticache_cluster",
        ValueShape::Name,
    ),
    ("redshift", &["cluster"], "redshift_cluster", ValueShape::Name),
    ("sqs", &["queue"], "sqs_queue_name", ValueShape::Name),
    ("sns", &["topic"], "sns_topic_name", ValueShape::Name),
    ("ecr", &["repository", "repo"], "ecr_repository", ValueShape::Name),
    ("eks", &["cluster"], "eks_cluster", ValueShape::Name),
    ("ecs", &["cluster"], "ecs_cluster", ValueShape::Name),
    ("glue", &["job"], "glue_job", ValueShape::Name),
    ("cloudformation", &["stack"], "stack_name", ValueShape::Name),
];

/// Keywords that name a value directly ("bucket my-logs", "RDS prod-db"); the others need their noun
/// ("Lambda function my-fn": a bare "lambda x" is Python).
const PROSE_DIRECT: &[&str] = &["bucket", "buckets", "s3", "rds", "elasticache", "redshift", "dynamodb"];

fn keyed(key_norm: &[u8]) -> Option<(KindId, ValueShape)> {
    // By map: the scan asks for the key of one token in sixteen (`fast::key_lookup`).
    static INDEX: std::sync::OnceLock<foldhash::HashMap<&'static [u8], (KindId, ValueShape)>> =
        std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut m = foldhash::HashMap::default();
        for (k, kind, shape) in KEYED {
            // The first entry of a key wins, as a search from the start would find it.
            m.entry(k.as_bytes()).or_insert((kinds::id(kind), *shape));
        }
        m
    });
    index.get(key_norm).copied()
}

fn is_name(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 255
        && v[0].is_ascii_alphanumeric()
        && all(v, |c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b'+' | b'=' | b',' | b'@' | b'#' | b'-')
        })
}

fn is_bucket(v: &[u8]) -> bool {
    (3..=63).contains(&v.len())
        && (v[0].is_ascii_lowercase() || v[0].is_ascii_digit())
        && (v[v.len() - 1].is_ascii_lowercase() || v[v.len() - 1].is_ascii_digit())
        && all(v, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-'
        })
        && !v.windows(2).any(|w| w == b"..")
}

/// A name in prose must look like an identifier, not a word: it holds `-`, `_` or a digit, and is not a number.
/// (Public for the fuzz targets, which check masking against the same reach rule as the leak check.)
pub fn looks_like_id(v: &[u8]) -> bool {
    v.iter().any(|c| matches!(c, b'-' | b'_') || c.is_ascii_digit())
        && !all(v, |c| c.is_ascii_digit() || c == b'.' || c == b'-')
        && v.iter().any(u8::is_ascii_alphabetic)
}

/// Whether `v` is a value of `shape` after its key, flag or list (the key says what it is, so some shapes ask for
/// less than [`shape_of`] does without one).
fn value_fits(v: &[u8], shape: ValueShape) -> bool {
    match shape {
        // `--rest-api-id 1234123412`, `"apiId": "aabbccddee"`: ten lower-case letters or digits, not necessarily
        // both (without a key, a number or a word of ten is far likelier than an API id).
        ValueShape::Ambiguous(Shape::ApiGwId) => {
            v.len() == 10 && all(v, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }
        ValueShape::Ambiguous(s) => shape_of(v) == Some(s),
        ValueShape::Name => is_name(v),
        ValueShape::Bucket => is_bucket(v),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The detector

pub struct Detector {
    kinds: Vec<KindInfo>,
    enabled: Vec<bool>,
    /// The pattern table as one meta regex: built on first use, only if [`Anchors`] ever gives up.
    regex: std::sync::OnceLock<Regex>,
    patterns: Vec<String>,
    anchored: Anchors,
    posts: Vec<Post>,
    /// Index of the IPv4 rule.
    ipv4_rule: usize,
    /// The bytes of tokens on which no rule but IPv4's can match: such tokens take the IPv4 shortcut
    /// ([`ipv4_search`]) instead of the regex. Worked out from the rules ([`Anchors::only_rule_within`]):
    /// digits, dots, slashes and dashes (versions such as `2.24.90.20141201-1`, dates).
    ipv4_only: [bool; 256],
    custom: Option<(Regex, Vec<KindId>)>,
    allow: HashSet<Vec<u8>>,
    /// Mask AWS-managed names: not [`DetectorConfig::keep_aws_managed`].
    aws_managed: bool,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("kinds", &self.kinds.len()).finish()
    }
}

impl Default for Detector {
    fn default() -> Self {
        match Detector::new(&DetectorConfig::default()) {
            Ok(d) => d,
            Err(e) => panic!("built-in patterns do not compile: {e}"),
        }
    }
}

/// What the fast scan already knows of a token's patterns: `Yes` when `interesting(tok)` holds, `No` when it
/// does not or the patterns cannot find anything in the token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Known {
    Unknown,
    Yes,
    No,
}

/// Per-scan state: a name finding that ended at this offset, so that a list "a, b and c" continues it.
#[derive(Default)]
struct ScanState {
    list: Option<(KindId, ValueShape, usize)>,
}

/// The letter of a JSON or C escape that separates tokens after a backslash: [`placeholder::is_escape_letter`]'s
/// `\n`, `\t`, `\r`, `\b`, `\f`, and JSON's `\/`. Not the `u` of `\uXXXX`: a placeholder written after it would
/// touch its hex digits (see `visit`).
pub(super) fn separating_escape(c: u8) -> bool {
    placeholder::is_escape_letter(c) || c == b'/'
}

/// The raw token (non-separator run) that ends right before `s`, skipping separators: `(start, end)`.
fn prev_raw_token(text: &[u8], s: usize) -> Option<(usize, usize)> {
    let is_escape = |b: usize| b > 0 && text[b - 1] == b'\\' && separating_escape(text[b]);
    let mut e = s;
    loop {
        while e > 0 && CLASS[text[e - 1] as usize] & SEP != 0 {
            e -= 1;
        }
        if e == 0 {
            return None;
        }
        let mut b = e;
        while b > 0 && CLASS[text[b - 1] as usize] & SEP == 0 {
            b -= 1;
        }
        // `\n` of a text escape is a separator, not a token: `Buckets:\nmy-bucket`, `x\nS3: y`.
        if is_escape(b) {
            if e - b == 1 {
                e = b - 1;
                continue;
            }
            b += 1;
        }
        return Some((b, e));
    }
}

/// The account field of an ARN that the ARN rule cannot match whole because its partition or region is a
/// placeholder or a template: `arn:aws:ecs:region:123456789012:cluster/x`, and `arn:aws:kms:${AWS::Region}:…`
/// or `arn:aws:logs:<region>:…`, whose braces and angle brackets end the token, so that the account is in a
/// token of its own (`:123456789012:key/…`). A field of exactly twelve digits after a colon and before a colon or
/// the token's end `e`, with `arn:` at the start of a word before it in the same run of non-blank bytes (at most
/// [`ARN_REACH`] back). Returns where the field starts.
fn arn_account_field(text: &[u8], s: usize, e: usize) -> Option<usize> {
    // (`memchr` to the colons: `token` asks about every long token with a digit, base64 blobs among them.)
    let tok = &text[s..e];
    let mut from = 0;
    let f = loop {
        let f = from + memchr::memchr(b':', &tok[from..])? + 1;
        if f + 12 <= tok.len()
            && all(&tok[f..f + 12], |c| c.is_ascii_digit())
            && tok.get(f + 12).is_none_or(|&c| c == b':')
        {
            break f;
        }
        from = f;
    };
    let run = &text[(s + f).saturating_sub(ARN_REACH)..s + f];
    let run = match run
        .iter()
        .rposition(|c| c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b'`'))
    {
        Some(p) => &run[p + 1..],
        None => run,
    };
    (0..run.len().saturating_sub(3))
        .any(|i| &run[i..i + 4] == b"arn:" && (i == 0 || !run[i - 1].is_ascii_alphanumeric()))
        .then_some(s + f)
}

/// How far before an account field [`arn_account_field`] looks for `arn:` (`arn:aws-us-gov:` and a service, a
/// template such as `${AWS::Region}` or `${data.aws_region.current.name}`, and the colons).
const ARN_REACH: usize = 128;

/// Whether `tok` (right after a `\\`) starts with the rest of a `\uXXXX` escape. A token that is only that holds
/// nothing for `visit` but a name after a prose keyword or in a list (its other checks need more than five
/// bytes, or a `-`, `:` or `=`).
fn unicode_escape(tok: &[u8]) -> bool {
    tok.len() >= 5 && tok[0] == b'u' && all(&tok[1..5], |c| c.is_ascii_hexdigit())
}

/// Whether a token ending at `e` is a quoted key (JSON or a Python dictionary pasted as text): a quote and a `:`
/// follow it.
fn quoted_key_end(text: &[u8], e: usize) -> bool {
    e + 1 < text.len() && matches!(text[e], b'"' | b'\'') && text[e + 1] == b':'
}

/// The end of the token `[s, j)` without the `.`, `!`, `?` and `:` it ends with (sentence punctuation, a key's
/// colon), which no identifier ends with.
#[inline(always)]
fn trimmed_end(text: &[u8], s: usize, j: usize) -> usize {
    let mut e = j;
    while e > s && matches!(text[e - 1], b'.' | b'!' | b'?' | b':') {
        e -= 1;
    }
    e
}

fn trim_assign(text: &[u8], (s, mut e): (usize, usize)) -> (usize, usize) {
    while e > s && matches!(text[e - 1], b':' | b'=' | b'>') {
        e -= 1;
    }
    (s, e)
}

impl Detector {
    pub fn new(config: &DetectorConfig) -> Result<Detector, ConfigError> {
        let mut kinds: Vec<KindInfo> = BUILTIN
            .iter()
            .map(|(n, p, t)| KindInfo {
                name: n.to_string(),
                prefix: p.to_string(),
                tier: *t,
            })
            .collect();
        let mut enabled = vec![true; kinds.len()];
        for name in &config.disabled_kinds {
            match kinds::builtin_id(name) {
                Some(id) => enabled[id as usize] = false,
                None => {
                    return Err(ConfigError {
                        key: "disabled_kinds".into(),
                        message: format!("unknown kind {name:?}"),
                    })
                }
            }
        }
        let rules = rules();
        let patterns: Vec<&str> = rules.iter().map(|r| r.pattern.as_str()).collect();
        let anchored = Anchors::new(&patterns).map_err(|e| ConfigError {
            key: "builtin".into(),
            message: format!("built-in pattern error: {e}"),
        })?;
        let posts: Vec<Post> = rules.iter().map(|r| r.post).collect();
        let ipv4_rule = posts.iter().position(|p| matches!(p, Post::Ipv4)).unwrap_or(usize::MAX);
        // The widest alphabet the shortcut holds for (none, if a rule ever matched digits alone).
        let ipv4_only = [&b"0123456789./-"[..], b"0123456789./"]
            .into_iter()
            .find(|a| anchored.only_rule_within(ipv4_rule, a))
            .map_or([false; 256], |a| std::array::from_fn(|b| a.contains(&(b as u8))));

        let mut custom = None;
        if !config.custom_patterns.is_empty() {
            let mut ids = Vec::new();
            for (i, c) in config.custom_patterns.iter().enumerate() {
                let key = format!("custom_patterns[{i}]");
                if c.name.is_empty()
                    || !all(c.name.as_bytes(), |b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
                    })
                {
                    return Err(ConfigError {
                        key: format!("{key}.name"),
                        message: "must match [a-z0-9_]+".into(),
                    });
                }
                if kinds.iter().any(|k| k.name == c.name) {
                    return Err(ConfigError {
                        key: format!("{key}.name"),
                        message: format!("kind {:?} already exists", c.name),
                    });
                }
                if !crate::placeholder::is_valid_prefix(&c.prefix) {
                    return Err(ConfigError {
                        key: format!("{key}.prefix"),
                        message: "must be AWS_ followed by upper-case segments, e.g. AWS_CORP_ID".into(),
                    });
                }
                if kinds.iter().any(|k| k.prefix == c.prefix) {
                    return Err(ConfigError {
                        key: format!("{key}.prefix"),
                        message: format!("prefix {} already used", c.prefix),
                    });
                }
                build_regex(&[c.regex.as_str()]).map_err(|e| ConfigError {
                    key: format!("{key}.regex"),
                    message: e,
                })?;
                ids.push(kinds.len() as KindId);
                kinds.push(KindInfo {
                    name: c.name.clone(),
                    prefix: c.prefix.clone(),
                    tier: Tier::Custom,
                });
                enabled.push(true);
            }
            let patterns: Vec<&str> = config.custom_patterns.iter().map(|c| c.regex.as_str()).collect();
            let re = build_regex(&patterns).map_err(|e| ConfigError {
                key: "custom_patterns".into(),
                message: e,
            })?;
            custom = Some((re, ids));
        }
        let allow = config.allowlist.iter().map(|s| s.as_bytes().to_vec()).collect();
        Ok(Detector {
            kinds,
            enabled,
            regex: std::sync::OnceLock::new(),
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            anchored,
            posts,
            ipv4_rule,
            ipv4_only,
            custom,
            allow,
            aws_managed: !config.keep_aws_managed,
        })
    }

    /// Appends the placeholder-shaped text of `text` (what unmasking would take for placeholders), as findings
    /// of `placeholder_literal`: all that is masked in a value skip rules pass unchanged.
    pub(crate) fn literals(&self, text: &[u8], out: &mut Vec<Finding>) {
        for (start, end) in crate::placeholder::find_all(text) {
            let kind = kid!("placeholder_literal");
            self.push(text, Finding { start, end, kind }, out);
        }
    }

    fn meta(&self) -> &Regex {
        self.regex.get_or_init(|| {
            let p: Vec<&str> = self.patterns.iter().map(String::as_str).collect();
            match build_regex(&p) {
                Ok(r) => r,
                Err(e) => panic!("built-in patterns compiled once already: {e}"),
            }
        })
    }

    pub fn kinds(&self) -> &[KindInfo] {
        &self.kinds
    }

    pub fn kind(&self, id: KindId) -> &KindInfo {
        &self.kinds[id as usize]
    }

    /// Appends the identifiers of `text` to `out`, in order, non-overlapping.
    pub fn find(&self, text: &[u8], ctx: KeyContext<'_>, out: &mut Vec<Finding>) {
        self.find_with(text, ctx, out, text.len() <= SHORT);
    }

    /// [`Detector::find`] with the block scan whatever the text's length, to test it against
    /// [`Detector::find_reference`] on short texts too.
    #[doc(hidden)]
    pub fn find_blocks(&self, text: &[u8], ctx: KeyContext<'_>, out: &mut Vec<Finding>) {
        self.find_with(text, ctx, out, false);
    }

    fn find_with(&self, text: &[u8], ctx: KeyContext<'_>, out: &mut Vec<Finding>, bytewise: bool) {
        let first = out.len();
        if let Some(key) = ctx.key {
            if self.keyed_value(text, key, ctx.parent, out) {
                return;
            }
        }
        if bytewise {
            self.scan_bytes(text, out);
        } else {
            self.scan_with(&Classifier::new(), text, out);
        }
        if let Some((re, ids)) = &self.custom {
            self.merge_custom(text, re, ids, first, out);
        }
    }

    fn scan_with(&self, cls: &Classifier, text: &[u8], out: &mut Vec<Finding>) {
        if text.len() <= 12 * 64 {
            self.scan::<16>(cls, text, out);
        } else {
            self.scan::<SEGMENT_BLOCKS>(cls, text, out);
        }
    }

    /// The per-token step of the scan: `[s0, j)` is a maximal run of token bytes. Returns where scanning resumes
    /// when the token consumed the one after it.
    fn visit(
        &self,
        text: &[u8],
        s0: usize,
        j: usize,
        pk: Known,
        st: &mut ScanState,
        out: &mut Vec<Finding>,
    ) -> Option<usize> {
        let mut bits = 0u8;
        for &c in &text[s0..j] {
            bits |= CLASS[c as usize];
        }
        let mut s = s0;
        // A JSON/C escape right before the token (`\nmy-bucket` in a text body) is a separator too. (Not a
        // `\uXXXX` escape: a placeholder written right after one would touch its hex digits, and the placeholder
        // grammar, which unmasking shares, does not take it as a separator.)
        if s > 0 && text[s - 1] == b'\\' && j - s > 1 && separating_escape(text[s]) {
            s += 1;
        }
        let e = trimmed_end(text, s, j);
        // A word with a capital and nothing else ("The", "Kubernetes") holds no identifier, unless it is a quoted
        // key in JSON pasted as text (`"FunctionName": "my-function"`).
        if e > s && (bits & (DIGIT | PUNCT) != 0 || e - s >= 16 || quoted_key_end(text, e)) {
            return self.token(text, s, e, bits, pk, st, out);
        }
        None
    }

    /// The pattern-table matches in `hay` (one token), found twice: the way tokens are searched
    /// ([`Detector::patterns`]: the anchored DFA at the starts its start table allows, or the IPv4 shortcut),
    /// and by the meta regex over the same table, searched unanchored. The tests' and the fuzzer's oracle for
    /// the former.
    #[doc(hidden)]
    pub fn pattern_matches(&self, hay: &[u8]) -> [Vec<Finding>; 2] {
        let mut fast = Vec::new();
        self.patterns(hay, 0, hay.len(), &mut fast);
        let mut regex = Vec::new();
        self.patterns_with(hay, 0, hay.len(), &mut regex, |at| {
            self.meta()
                .search(&Input::new(hay).range(at..))
                .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
        });
        [fast, regex]
    }

    /// The scan as first written: a loop over bytes. The reference the fast scan is tested against.
    #[doc(hidden)]
    pub fn find_reference(&self, text: &[u8], ctx: KeyContext<'_>, out: &mut Vec<Finding>) {
        self.find_with(text, ctx, out, true);
    }

    /// The loop of [`Detector::find_reference`].
    fn scan_bytes(&self, text: &[u8], out: &mut Vec<Finding>) {
        let mut st = ScanState::default();
        let n = text.len();
        let mut i = 0;
        while let Some(p) = crate::skip::next_interesting(text, i) {
            // The token around the interesting byte: back to its start, forward to its end.
            let mut s = p;
            while s > i && CLASS[text[s - 1] as usize] & SEP == 0 {
                s -= 1;
            }
            let mut j = p;
            while j < n && CLASS[text[j] as usize] & SEP == 0 {
                j += 1;
            }
            i = j;
            if let Some(next) = self.visit(text, s, j, Known::Unknown, &mut st, out) {
                i = next;
            }
        }
    }

    fn push(&self, text: &[u8], f: Finding, out: &mut Vec<Finding>) -> bool {
        if !self.enabled[f.kind as usize] || f.start >= f.end {
            return false;
        }
        if !self.allow.is_empty() && self.allow.contains(&text[f.start..f.end]) {
            return false;
        }
        out.push(f);
        true
    }

    /// A JSON string whose key names a kind, e.g. `"OwnerId": "123456789012"`.
    fn keyed_value(&self, text: &[u8], key: &str, parent: Option<&str>, out: &mut Vec<Finding>) -> bool {
        // On the stack for the usual key (this runs for every keyed string of a JSON body: tens of thousands in a
        // request of AWS API output).
        let (window, mut long);
        let norm: &[u8] = if key.len() <= Window::CAP {
            window = Window::new(key.as_bytes());
            window.norm()
        } else {
            long = Vec::new();
            normalize(key.as_bytes(), &mut long);
            &long
        };
        // (`{"Owner": {"ID": "<64 hex>"}}` is the parent-key case of `keyword_key`.)
        let Some((kind, shape)) = keyed(norm).or_else(|| keyword_key(text, norm, parent)) else {
            return false;
        };
        let mut v = text;
        let mut off = 0;
        if shape == ValueShape::Ambiguous(Shape::HostedZone) && v.starts_with(b"/hostedzone/") {
            off = 12;
            v = &v[12..];
        }
        if value_fits(v, shape) {
            return self.push(
                text,
                Finding {
                    start: off,
                    end: text.len(),
                    kind,
                },
                out,
            );
        }
        false
    }

    /// Looks at one token; returns where scanning resumes when it consumed the token after it (a flag's value).
    #[allow(clippy::too_many_arguments)]
    fn token(
        &self,
        text: &[u8],
        s: usize,
        e: usize,
        bits: u8,
        pk: Known,
        st: &mut ScanState,
        out: &mut Vec<Finding>,
    ) -> Option<usize> {
        let tok = &text[s..e];
        let before = out.len();
        let run_patterns = match pk {
            Known::Unknown => interesting(tok),
            Known::Yes => true,
            Known::No => false,
        };
        if run_patterns {
            self.patterns(text, s, e, out);
            if memchr::memchr2(b'%', b'$', tok).is_some()
                || (matches!(tok[0], b'u' | b'x') && s > 0 && text[s - 1] == b'\\')
            {
                self.after_escapes(text, s, e, before, out);
            }
        }
        if bits & DIGIT != 0 && e - s > 12 {
            self.arn_fields(text, s, e, before, out);
        }
        if out.len() > before {
            st.list = None;
            return None;
        }
        if bits & PUNCT != 0 || quoted_key_end(text, e) {
            let next = self.key_then_value(text, s, e, st, out);
            if next.is_some() || out.len() > before {
                return next;
            }
            if memchr::memchr(b'&', tok).is_some() && self.query_params(text, s, e, out) {
                st.list = None;
                return None;
            }
        }
        self.context(text, s, e, bits, st, out);
        None
    }

    /// Pattern matches that start right after an escape of a separator: a percent-escape in URL-encoded text
    /// (`key%3DAKIA…`, `%22arn:aws:iam::…%22`, `%2Fvpc-…`, `%2010.1.2.3`), or a `\uXXXX` escape in text that spells
    /// out JSON's or C's (`\u0022arn:aws:…`, `\x22arn:aws:…`; the `\` before makes them a token of their own). The table's `\b` does not
    /// hold between the escape's last hex digit and the id, so the table is searched again, anchored, from there,
    /// and the rules see the escape's byte before the match (after `%2D`, a `-`, an id is part of a name, as after
    /// `-`; a non-ASCII character is a separator, as in the text it stands for). The finding takes the escape's
    /// hex digits (`key%AWS_ACCESS_KEY_001`, `\AWS_IAM_ROLE_001`): a placeholder right after them would touch a
    /// word byte, and unmasking would not read it as one. Matches that a finding of the token (since `before`)
    /// holds already are not searched (an encoded ARN's `%3A…` parts).
    fn after_escapes(&self, text: &[u8], s: usize, e: usize, before: usize, out: &mut Vec<Finding>) {
        let hay = &text[s..e];
        let hex = |c: u8| (c as char).to_digit(16);
        // (Where the match may start, the escape's byte, the length of the escape's part after `%` or `\`.)
        // (`\xHH`, C's and Python's, too.)
        let digits = match hay.first() {
            Some(b'u') => 4,
            Some(b'x') => 2,
            _ => 0,
        };
        let unicode = (digits > 0 && s > 0 && text[s - 1] == b'\\' && hay.len() > digits + 1)
            .then(|| hay[1..=digits].iter().try_fold(0u32, |v, &c| Some(v * 16 + hex(c)?)))
            .flatten()
            .map(|v| {
                (
                    digits + 1,
                    u8::try_from(v).ok().filter(u8::is_ascii).unwrap_or(b' '),
                    digits + 1,
                )
            });
        let pair = |at: usize| Some(hex(*hay.get(at)?)? * 16 + hex(*hay.get(at + 1)?)?);
        // (`%252F`, twice encoded, is a `/` too; so is `$252F`, the AWS console's spelling of it.)
        let percent = memchr::memchr2_iter(b'%', b'$', hay).filter_map(|p| match pair(p + 1)? {
            0x25 => Some((p + 5, pair(p + 3)? as u8, 4)),
            _ if hay[p] == b'$' => None,
            v => Some((p + 3, v as u8, 2)),
        });
        for (q, sep, digits) in unicode.into_iter().chain(percent) {
            // A word byte decoded is the middle of a word; a separator at `q` lets `\b` hold already.
            if q >= hay.len()
                || is_word(sep)
                || !is_word(hay[q])
                || out[before..].iter().any(|f| f.start <= s + q && s + q < f.end)
            {
                continue;
            }
            let sub = &hay[q..];
            // (The anchored DFA the scan uses; the meta regex, built on first use, only when the DFA gives up.)
            let found = self.anchored.at(sub, 0).unwrap_or_else(|()| {
                self.meta()
                    .search(&Input::new(sub).anchored(Anchored::Yes))
                    .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            });
            let Some((pattern, ms, me)) = found else {
                continue;
            };
            let Some((kind, ps, pe)) = self.post_after(sub, sep, pattern, ms, me) else {
                continue;
            };
            if kind == kid!("placeholder_literal") {
                continue;
            }
            if !self.allow.is_empty() && self.allow.contains(&sub[ps..pe]) {
                continue;
            }
            let start = s + q + ps - if ps == 0 { digits } else { 0 };
            let mut end = s + q + pe;
            // The leftmost match wins: findings of the token that start inside this one go, and one that went on
            // past its end takes this one's end with it (nothing it held stays unmasked).
            let mut k = before;
            while k < out.len() {
                if out[k].start >= start && out[k].start < end {
                    end = end.max(out[k].end);
                    out.remove(k);
                } else {
                    k += 1;
                }
            }
            self.push(text, Finding { start, end, kind }, out);
        }
        if out.len() > before {
            out[before..].sort_by_key(|f| f.start);
        }
    }

    /// The account field of an ARN that the ARN rule could not match whole ([`arn_account_field`]), and a KMS key
    /// id right after it (`…:123456789012:key/<uuid>`), unless a pattern's finding (since `before`) holds it
    /// already; the resource part may hold other ids the patterns found (`…:instance/i-…`), so the findings are
    /// put back in order.
    fn arn_fields(&self, text: &[u8], s: usize, e: usize, before: usize, out: &mut Vec<Finding>) {
        let Some(a) = arn_account_field(text, s, e) else { return };
        if out[before..].iter().any(|f| f.start <= a && a + 12 <= f.end) {
            return;
        }
        let at = out.len();
        let account = Finding {
            start: a,
            end: a + 12,
            kind: kid!("account_id"),
        };
        self.push(text, account, out);
        let key = a + 12 + 5;
        if text[a + 12..e].starts_with(b":key/") && e == key + 36 && is_uuid(&text[key..e]) {
            let f = Finding {
                start: key,
                end: e,
                kind: kid!("kms_key_id"),
            };
            self.push(text, f, out);
        }
        if at > before && out.len() > at {
            out[before..].sort_by_key(|f| f.start);
        }
    }

    /// `--bucket my-bucket`, `--bucket=my-bucket`, `Bucket: my-bucket`, `s3_bucket = my-bucket`, `key=value`:
    /// a known flag or key, then its value (which may be a plain word, so it is read from here).
    fn key_then_value(
        &self,
        text: &[u8],
        s: usize,
        e: usize,
        st: &mut ScanState,
        out: &mut Vec<Finding>,
    ) -> Option<usize> {
        let raw_end = if quoted_key_end(text, e) {
            e + 2 // `"Key":`: the quote is dropped with the other punctuation when the key is normalized
        } else {
            let mut r = e;
            while r < text.len() && matches!(text[r], b':' | b'=' | b'>') {
                r += 1;
            }
            r
        };
        let raw = &text[s..raw_end];
        let is_flag = raw.starts_with(b"--");
        let op = raw.iter().position(|&c| c == b'=' || c == b':');
        // The key: the flag, the token before a trailing operator, or the token before a lone operator.
        let (key, value_in_token) = match op {
            Some(p) if p + 1 < raw.len() && !matches!(raw[p + 1], b':' | b'=' | b'>') => ((s, s + p), Some(s + p + 1)),
            Some(0) => match prev_raw_token(text, s) {
                Some(k) => (trim_assign(text, k), None),
                None => return None,
            },
            Some(p) => ((s, s + p), None),
            None if is_flag => ((s, e), None),
            None => return None,
        };
        let (kind, shape) = fast::key_lookup(&text[key.0..key.1])?;
        let fits = |v: &[u8]| value_fits(v, shape) && (matches!(shape, ValueShape::Ambiguous(_)) || !is_flag_like(v));
        if let Some(vs) = value_in_token {
            if fits(&text[vs..e]) {
                self.push(
                    text,
                    Finding {
                        start: vs,
                        end: e,
                        kind,
                    },
                    out,
                );
                st.list = None;
            }
            return None;
        }
        // The value is the next token on the same line.
        let mut vs = raw_end;
        while vs < text.len() && CLASS[text[vs] as usize] & SEP != 0 && (vs - raw_end < 8) {
            vs += 1;
        }
        if vs > 0 && text[vs - 1] == b'\\' && vs + 1 < text.len() && placeholder::is_escape_letter(text[vs]) {
            vs += 1;
        }
        let mut ve = vs;
        while ve < text.len() && CLASS[text[ve] as usize] & SEP == 0 {
            ve += 1;
        }
        let mut vend = ve;
        while vend > vs && matches!(text[vend - 1], b'.' | b',' | b':') {
            vend -= 1;
        }
        // A quoted key is no value: `{"bucketName": {"prefix": …}}`.
        if vend > vs && fits(&text[vs..vend]) && !quoted_key_end(text, ve) {
            // Identifiers with a pattern of their own (an ARN after `--role-arn`) are left to the patterns.
            if interesting(&text[vs..vend]) {
                return None;
            }
            self.push(
                text,
                Finding {
                    start: vs,
                    end: vend,
                    kind,
                },
                out,
            );
            st.list = Some((kind, shape, vend));
            return Some(ve);
        }
        None
    }

    /// The parameters of a query string or a form body in one token (`…/api?accountId=123456789012&region=…`,
    /// `aws_secret_access_key=…&x=1`): each `key=value` between `?` or `&` is taken as a key and its value, as
    /// [`Detector::key_then_value`] takes one that ends the token. Whether one was found.
    fn query_params(&self, text: &[u8], s: usize, e: usize, out: &mut Vec<Finding>) -> bool {
        let before = out.len();
        for (start, end, kind, shape) in query_params(text, s, e) {
            let value = &text[start..end];
            let fits = value_fits(value, shape) && (matches!(shape, ValueShape::Ambiguous(_)) || !is_flag_like(value));
            // (No pattern matched in the token, or it would not be here: a value that looks like an id is this
            // key's.)
            if fits {
                self.push(text, Finding { start, end, kind }, out);
            }
        }
        out.len() > before
    }

    /// Runs the multi-pattern regex over one token.
    fn patterns(&self, text: &[u8], s: usize, e: usize, out: &mut Vec<Finding>) {
        let hay = &text[s..e];
        if self.ipv4_only(hay) {
            // Only the IPv4 pattern can match here: no regex call (`ipv4_search` is tested against it).
            let rule = self.ipv4_rule;
            return self.patterns_with(text, s, e, out, |at| ipv4_search(hay, at).map(|(a, b)| (rule, a, b)));
        }
        self.patterns_with(text, s, e, out, |at| {
            self.anchored.search(hay, at).unwrap_or_else(|()| {
                self.meta()
                    .search(&Input::new(hay).range(at..))
                    .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            })
        })
    }

    /// Whether no rule but IPv4's can match in `hay` ([`Detector::ipv4_only`]).
    #[inline]
    fn ipv4_only(&self, hay: &[u8]) -> bool {
        hay.iter().all(|&c| self.ipv4_only[c as usize])
    }

    /// Whether the IPv4 shortcut of [`Detector::patterns`] finds anything in `text[s..e]` (a token for which
    /// [`Detector::ipv4_only`] holds).
    fn ipv4_finds(&self, text: &[u8], s: usize, e: usize) -> bool {
        let hay = &text[s..e];
        // The usual case, a token that is one address and nothing else (`127.0.0.1`): the rule's only match is
        // the whole token, so the address's kind decides, without the search. Only a rejection is taken from
        // here; an address goes through the match loop (and the allowlist).
        if let Some(quad) = dotted_quad(hay) {
            if quad_kind(quad, b"").is_none() {
                return false;
            }
        } else if hay.iter().filter(|&&c| c == b'.').count() < 3 {
            // Every match holds three dots: versions (`3.11.4`) and fractions (`3/5`) are done here.
            return false;
        }
        let rule = self.ipv4_rule;
        let mut out = Vec::new();
        self.patterns_with(text, s, e, &mut out, |at| {
            ipv4_search(hay, at).map(|(a, b)| (rule, a, b))
        });
        !out.is_empty()
    }

    /// The match loop of [`Detector::patterns`], over a leftmost-first search from an offset.
    fn patterns_with(
        &self,
        text: &[u8],
        s: usize,
        e: usize,
        out: &mut Vec<Finding>,
        search: impl Fn(usize) -> Option<(usize, usize, usize)>,
    ) {
        let hay = &text[s..e];
        let mut at = 0;
        while at < hay.len() {
            let Some((pattern, ms, me)) = search(at) else {
                break;
            };
            match self.post(hay, pattern, ms, me) {
                Some((kind, ps, pe)) => {
                    self.push(
                        text,
                        Finding {
                            start: s + ps,
                            end: s + pe,
                            kind,
                        },
                        out,
                    );
                    // (Past the finding, which may go on after the match: a credential takes the word glued to
                    // it, and another credential's prefix may lie in that word.)
                    at = me.max(pe).max(ms + 1);
                    if let Post::UserInfo = self.posts[pattern] {
                        // The host after the `@`: a bucket in an `s3://` URI, else searched as any text is (an
                        // address, an endpoint).
                        let s3 = [&b"s3://"[..], b"s3a://", b"s3n://"]
                            .iter()
                            .any(|p| hay[..ms].ends_with(p));
                        if s3 && me > pe + 1 {
                            let kind = kid!("s3_bucket");
                            self.push(
                                text,
                                Finding {
                                    start: s + pe + 1,
                                    end: s + me,
                                    kind,
                                },
                                out,
                            );
                        } else {
                            at = pe + 1;
                        }
                    }
                }
                None => at = ms + 1,
            }
        }
    }

    /// Validates a raw match and decides its kind and final span (relative to the token).
    fn post(&self, hay: &[u8], pattern: usize, ms: usize, me: usize) -> Option<(KindId, usize, usize)> {
        let prev = if ms > 0 { hay[ms - 1] } else { b' ' };
        self.post_after(hay, prev, pattern, ms, me)
    }

    /// [`Detector::post`] with the byte before the match given (`prev`; a percent-escape's decoded byte).
    fn post_after(&self, hay: &[u8], prev: u8, pattern: usize, ms: usize, me: usize) -> Option<(KindId, usize, usize)> {
        let m = &hay[ms..me];
        let next = hay.get(me).copied().unwrap_or(b' ');
        let next2 = hay.get(me + 1).copied().unwrap_or(b' ');
        // Never a part of a larger token: `my-subnet-1a2b3c4d`, `x.i-…`.
        let dash_before = prev == b'-';
        match self.posts[pattern] {
            Post::Fixed(kind) if kind == kid!("placeholder_literal") => {
                // Exactly the response side's grammar: whatever it would resolve, the request must mask.
                Some((kind, ms, me))
            }
            Post::Fixed(kind) => {
                // Placeholder-shaped text is masked wherever unmasking would take it for a placeholder, that is
                // between any two non-word bytes (`-AWS_EC2_001-`, `x.AWS_EC2_001`): else it could be resolved.
                let literal = kind == kid!("placeholder_literal");
                if (!literal && (dash_before || prev == b'.')) || is_word(next) {
                    return None;
                }
                if kind == kid!("log_group") && (is_word(prev) || prev == b'.' || prev == b'/') {
                    return None;
                }
                Some((kind, ms, me))
            }
            Post::UserInfo => Some((kid!("secret_key"), ms, ms + memchr::memchr(b'@', m)?)),
            Post::Credential(kind) => {
                // The match takes the word bytes glued after it (`ABSK…AAAA_name`): its pattern stops at the
                // first byte outside its alphabet, and a `_…` left behind would stay glued to the placeholder,
                // which then neither reads as one nor comes back. Found by the `detect` fuzzer.
                let end = me + hay[me..].iter().take_while(|&&c| is_word(c)).count();
                Some((kind, ms, end))
            }
            Post::FixedDigit(kind) => {
                // (Elastic Beanstalk names its resources after the environment: `awseb-e-…-stack`.)
                let beanstalk = kind == kid!("beanstalk_env") && hay[..ms].ends_with(b"awseb-");
                if (dash_before && !beanstalk) || prev == b'.' || !m.iter().any(u8::is_ascii_digit) {
                    return None;
                }
                Some((kind, ms, me))
            }
            Post::Lettered(kind, letters) => {
                if dash_before || prev == b'.' {
                    return None;
                }
                let body = &m[memchr::memchr(b'-', m)? + 1..];
                let ok = body.iter().any(u8::is_ascii_digit)
                    || match letters {
                        Letters::AtLeast(n) => body.len() >= n,
                        Letters::Capital => body.iter().any(u8::is_ascii_uppercase),
                        Letters::Any => true,
                    };
                ok.then_some((kind, ms, me))
            }
            Post::Arn => {
                // (After a `:`, an ARN is a value: `Resource:arn:aws:s3:::bucket`. One inside an ARN is part of
                // the outer match.)
                if matches!(prev, b'-' | b'.') {
                    return None;
                }
                let mut end = me;
                while end > ms && matches!(hay[end - 1], b'.' | b':') {
                    end -= 1;
                }
                let kind = arn_kind(&hay[ms..end], self.aws_managed)?;
                Some((kind, ms, end))
            }
            Post::ArnUrlEncoded => {
                let decoded = percent_decode(m);
                let kind = arn_kind(&decoded, self.aws_managed)?;
                Some((kind, ms, me))
            }
            Post::HexId => {
                // (A PrivateLink service name ends in its service id: `com.amazonaws.vpce.<region>.vpce-svc-…`.)
                if dash_before || (prev == b'.' && !m.starts_with(b"vpce-svc-")) {
                    return None;
                }
                let dash = m.iter().rposition(|&c| c == b'-')?;
                let (prefix, id) = (&m[..dash], &m[dash + 1..]);
                let (kind, rule) = hex_prefix(prefix)?;
                // Ids are short: a window scan, not a `memmem` searcher built per call.
                let example = id.windows(7).any(|w| w == b"EXAMPLE");
                let ok = match rule {
                    HexLen::Lenient => example || (8..=17).contains(&id.len()),
                    HexLen::Exact(a, b) => !example && (id.len() == a || id.len() == b),
                    HexLen::Range(a, b) => !example && (a..=b).contains(&id.len()),
                };
                let root_like =
                    || all(id, |c| c.is_ascii_lowercase() || c.is_ascii_digit()) && id.iter().any(u8::is_ascii_digit);
                if !ok && prefix == b"r" && id.len() <= 32 && root_like() {
                    // Not a reservation: the organization-root rule's match, which this rule's shadows
                    // (`r-` and 32 hex digits, WorkMail resources, are ids too).
                    return Some((kid!("org_root"), ms, me));
                }
                ok.then_some((kind, ms, me))
            }
            Post::AwsHost => {
                if dash_before || prev == b'.' || next == b'-' || (next == b'.' && next2.is_ascii_alphanumeric()) {
                    return None;
                }
                aws_host(m).map(|(kind, a, b)| (kind, ms + a, ms + b))
            }
            Post::S3Bucket => {
                // The bucket is the last path segment matched (`https://s3…/bucket`) or the authority (`s3://bucket`).
                // `s3://arn:aws:s3:…:accesspoint/…` holds an access point ARN, not a bucket named "arn".
                if (next == b'.' && next2.is_ascii_alphanumeric()) || next == b':' {
                    return None;
                }
                let start = if m.starts_with(b"s3") {
                    memchr::memmem::find(m, b"://")? + 3
                } else {
                    m.iter().rposition(|&c| c == b'/')? + 1
                };
                Some((kid!("s3_bucket"), ms + start, me))
            }
            Post::Presigned => {
                let eq = memchr::memchr(b'=', m)?;
                // A credential, token or signature: not `-`, `=x` or a stub cut short by a non-ASCII byte, which,
                // masked everywhere in the request, would take every word that holds it (or fail the leak check).
                let v = &m[eq + 1..];
                if v.len() < 6 || !v[0].is_ascii_alphanumeric() {
                    return None;
                }
                Some((kid!("presigned_credential"), ms + eq + 1, me))
            }
            Post::KmsAlias => {
                // AWS-managed aliases (`alias/aws/s3`) are public names, like AWS-managed policy ARNs
                // (`arn:aws:iam::aws:policy/…`): the catalogue's allow-list, kept when configured.
                if prev == b'/' || dash_before || (m.starts_with(b"alias/aws/") && !self.aws_managed) {
                    return None;
                }
                Some((kid!("kms_alias"), ms, me))
            }
            Post::Ipv4 => {
                if prev == b'.' || dash_before || (next == b'.' && next2.is_ascii_digit()) || next == b'-' {
                    return None;
                }
                ipv4_kind(m, &hay[..ms]).map(|k| (k, ms, me))
            }
            Post::Ipv6 => {
                if matches!(prev, b':' | b'.' | b'-') || is_word(next) || next == b':' || next == b'.' {
                    return None;
                }
                ipv6_ok(m).then(|| (kid!("ipv6"), ms, me))
            }
        }
    }

    /// Ambiguous shapes and names, on a token no pattern claimed.
    fn context(&self, text: &[u8], s: usize, e: usize, bits: u8, st: &mut ScanState, out: &mut Vec<Finding>) {
        let tok = &text[s..e];
        // `--flag=value`, `key:value`, `/hostedzone/Z…`: the value part.
        let mut vs = s;
        if let Some(p) = tok.iter().rposition(|&c| c == b'=' || c == b':') {
            if p + 1 < tok.len() && !is_mac(tok) {
                vs = s + p + 1;
            }
        }
        if tok.starts_with(b"/hostedzone/") {
            vs = s + 12;
        }
        let v = &text[vs..e];
        let found = |kind: KindId, shape: Option<ValueShape>, st: &mut ScanState, out: &mut Vec<Finding>| {
            if self.push(
                text,
                Finding {
                    start: vs,
                    end: e,
                    kind,
                },
                out,
            ) {
                st.list = shape.map(|sh| (kind, sh, e));
            }
        };

        let maybe_shape = bits & DIGIT != 0 || v.len() == 40 || v.len() >= 100;
        // The next item of a list (not the next key of an object: `"a": "x", "b": …`).
        let listed = |st: &ScanState| match st.list {
            Some((kind, shape, end)) if end <= s && fast::list_gap(&text[end..s]) && !quoted_key_end(text, e) => {
                Some((kind, shape))
            }
            _ => None,
        };
        if let Some(shape) = if maybe_shape { shape_of(v) } else { None } {
            if self.context_holds(text, vs, shape) || (shape == Shape::Account && account_word_after(text, e)) {
                return found(shape_kind(shape), None, st, out);
            }
            // A list of ambiguous values after their key: `"AccountIds": [` and an account id per line.
            if let Some((kind, ValueShape::Ambiguous(of_list))) = listed(st) {
                if of_list == shape {
                    return found(kind, Some(ValueShape::Ambiguous(shape)), st, out);
                }
            }
        }

        if !looks_like_id(v) {
            return;
        }
        // Lists after a name: "buckets: a, b and c".
        if let Some((kind, shape)) = listed(st) {
            if value_fits(v, shape) && !is_prose_keyword(v) {
                return found(kind, Some(shape), st, out);
            }
        }
        // Names in prose: "S3 bucket my-app-logs", "RDS instance prod-db-1". A CamelCase word with a digit
        // ("IPv4Address") is code, not a resource name.
        let named =
            v.iter().any(|&c| c == b'-' || c == b'_') || all(v, |c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !named {
            return;
        }
        let Some(p1) = prev_raw_token(text, s) else { return };
        let (a, b) = trim_assign(text, p1);
        let p1_text = &text[a..b];
        // The word before is a keyword or a filler, or no name follows (the fast scan's superset test: most
        // tokens that come this far, `"thread":"http-nio-8080-exec-7"`, stop here).
        if !fast::prose_word_maybe(p1_text) {
            return;
        }
        let p0 = prev_raw_token(text, p1.0).unwrap_or((0, 0));
        let (p1, p0) = (p1_text, &text[p0.0..p0.1]);
        // `aws rds describe-db-instances`: after `aws`, the keyword is a CLI service and the value its command.
        let cli = norm_eq(p0, "aws");
        for (kw, fillers, kind, shape) in PROSE_NAMES {
            // (`norm_eq` first: it fails on the length alone for nearly every keyword.)
            let direct = !cli && norm_eq(p1, kw) && PROSE_DIRECT.contains(kw);
            let filled = !direct && norm_eq(p0, kw) && fillers.iter().any(|f| norm_eq(p1, f));
            if (direct || filled) && value_fits(v, *shape) {
                return found(kinds::id(kind), Some(*shape), st, out);
            }
        }
    }

    /// A keyword for `shape` within the 48 bytes before `at`, on the same line; for a canonical user id or a
    /// CloudFront id also within the [`ENCLOSING`] bytes before, over lines.
    fn context_holds(&self, text: &[u8], at: usize, shape: Shape) -> bool {
        // A content digest (`sha256:<64 hex>`, `nginx@sha256:…`) is never a canonical user id, whatever the
        // words around it say (`"owner": …` a few lines above a container image).
        if shape == Shape::Hex64
            && at >= 7
            && text[at - 7..at - 1].eq_ignore_ascii_case(b"sha256")
            && matches!(text[at - 1], b':' | b'=')
        {
            return false;
        }
        let from = at.saturating_sub(48);
        let mut raw = &text[from..at];
        if let Some(nl) = memchr::memrchr(b'\n', raw) {
            raw = &raw[nl + 1..];
        }
        // Without the letter every keyword holds, no keyword (the request ids of log lines: UUIDs with no `k`
        // before them). Else normalized on the stack: most tokens that come here hold a shape, and most of them
        // no keyword.
        let lettered = keyword_letter(shape).is_none_or(|c| memchr::memchr2(c, c.to_ascii_uppercase(), raw).is_some());
        if lettered && Window::new(raw).holds_keyword(shape) {
            return true;
        }
        match shape {
            // A policy principal: `"AWS": "123456789012"` / `"AWS": ["…", "…"]`.
            Shape::Account => Window::new(raw).norm().ends_with(b"aws"),
            // A secret next to its access key id.
            Shape::Secret40 => {
                let lo = at.saturating_sub(120);
                let hi = (at + 160).min(text.len());
                let near = &text[lo..hi];
                [b"AKIA", b"ASIA"]
                    .iter()
                    .any(|p| memchr::memmem::find(near, *p).is_some())
            }
            // JSON output pasted as text (`aws s3api get-bucket-acl`, `aws cloudfront list-distributions`): the
            // keyword names the enclosing object, lines above the value (`"Owner": {`, `"Grantee": {`,
            // `"Distribution": {`).
            _ if shape.named_by_enclosing() => {
                let mut wide = Vec::with_capacity(ENCLOSING);
                normalize(&text[at.saturating_sub(ENCLOSING)..at], &mut wide);
                holds_keyword(&wide, shape)
            }
            _ => false,
        }
    }

    fn merge_custom(&self, text: &[u8], re: &Regex, ids: &[KindId], first: usize, out: &mut Vec<Finding>) {
        let mut extra = Vec::new();
        for m in re.find_iter(text) {
            if m.is_empty() {
                continue;
            }
            let f = Finding {
                start: m.start(),
                end: m.end(),
                kind: ids[m.pattern().as_usize()],
            };
            self.push(text, f, &mut extra);
        }
        if extra.is_empty() {
            return;
        }
        let mut merged: Vec<Finding> = out.drain(first..).chain(extra).collect();
        // Leftmost-longest over built-in and custom findings.
        merged.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut last_end = 0;
        for f in merged {
            if f.start >= last_end {
                last_end = f.end;
                out.push(f);
            }
        }
    }
}

fn is_prose_keyword(v: &[u8]) -> bool {
    PROSE_NAMES
        .iter()
        .any(|(kw, _, _, _)| kw.as_bytes().eq_ignore_ascii_case(v))
}

/// Keys written in text (`s3_logs_bucket = …`), matched on their normalized ending.
const TEXT_KEY_SUFFIXES: &[(&str, &str, ValueShape)] = &[
    ("bucket", "s3_bucket", ValueShape::Bucket),
    ("rdsinstance", "rds_instance", ValueShape::Name),
    ("dbinstance", "rds_instance", ValueShape::Name),
    ("rdscluster", "rds_instance", ValueShape::Name),
    ("redshift", "redshift_cluster", ValueShape::Name),
    ("redshiftcluster", "redshift_cluster", ValueShape::Name),
    ("elasticache", "elasticache_cluster", ValueShape::Name),
    ("elasticachecluster", "elasticache_cluster", ValueShape::Name),
    ("gluejob", "glue_job", ValueShape::Name),
    ("lambdafunction", "lambda_function", ValueShape::Name),
    ("dynamodbtable", "dynamodb_table", ValueShape::Name),
    ("eksclustername", "eks_cluster", ValueShape::Name),
    ("ecsclustername", "ecs_cluster", ValueShape::Name),
    ("stackname", "stack_name", ValueShape::Name),
];

fn text_key(key: &[u8]) -> Option<(KindId, ValueShape)> {
    TEXT_KEY_SUFFIXES
        .iter()
        // The last byte first: most keys end otherwise, and that is one comparison.
        .find(|(s, _, _)| s.as_bytes().last() == key.last() && key.ends_with(s.as_bytes()))
        .map(|(_, k, sh)| (kinds::id(k), *sh))
}

fn is_flag_like(v: &[u8]) -> bool {
    v.starts_with(b"-")
}

/// CLI flags whose normalized name is not also a JSON key of [`KEYED`] (all name account ids).
const FLAG_ALIASES: &[&str] = &["accountids", "targetaccountids"];

fn flag_alias(norm: &[u8]) -> Option<(KindId, ValueShape)> {
    FLAG_ALIASES
        .iter()
        .any(|a| a.as_bytes() == norm)
        .then_some((kid!("account_id"), ValueShape::Ambiguous(Shape::Account)))
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            let h = |c: u8| (c as char).to_digit(16);
            if let (Some(a), Some(b)) = (h(s[i + 1]), h(s[i + 2])) {
                out.push((a * 16 + b) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// The kind of an ARN, from its service and resource type. `None` for AWS-managed ARNs (account `aws`), which
/// carry no customer data.
fn arn_kind(arn: &[u8], aws_managed: bool) -> Option<KindId> {
    let mut parts = arn.splitn(6, |&c| c == b':');
    let _arn = parts.next()?;
    let _partition = parts.next()?;
    let service = parts.next()?;
    let _region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next().unwrap_or(b"");
    if account == b"aws" && !aws_managed {
        return None;
    }
    let rtype = resource.split(|&c| c == b'/' || c == b':').next().unwrap_or(b"");
    let name = match service {
        b"iam" | b"sts" => match rtype {
            b"role" => "iam_role_arn",
            b"user" => "iam_user_arn",
            b"group" => "iam_group_arn",
            b"policy" => "iam_policy_arn",
            b"instance-profile" => "iam_instance_profile_arn",
            b"assumed-role" | b"federated-user" => "iam_assumed_role_arn",
            b"root" => "iam_root_arn",
            b"oidc-provider" | b"saml-provider" => "iam_provider_arn",
            _ => "arn",
        },
        b"lambda" => "lambda_arn",
        b"s3" | b"s3-object-lambda" | b"s3express" => "s3_arn",
        b"kms" => "kms_key_arn",
        b"secretsmanager" => "secret_arn",
        b"ssm" => "ssm_parameter_arn",
        b"dynamodb" => "dynamodb_table_arn",
        b"sns" => "sns_topic_arn",
        b"sqs" => "sqs_queue_arn",
        b"ecs" => "ecs_arn",
        b"eks" => "eks_arn",
        b"elasticloadbalancing" => "elb_arn",
        b"cloudformation" => "cloudformation_stack_arn",
        b"acm" | b"acm-pca" => "acm_certificate_arn",
        b"rds" => "rds_arn",
        b"ec2" => "ec2_arn",
        b"logs" => "logs_arn",
        b"states" => "states_arn",
        b"kinesis" | b"firehose" => "kinesis_arn",
        b"codecommit" => "codecommit_arn",
        b"ecr" => "ecr_arn",
        b"batch" => "batch_arn",
        b"sagemaker" => "sagemaker_arn",
        b"es" | b"aoss" => "opensearch_arn",
        b"athena" => "athena_arn",
        b"glue" => "glue_arn",
        b"elasticache" => "elasticache_arn",
        b"redshift" | b"redshift-serverless" => "redshift_arn",
        _ => "arn",
    };
    Some(kinds::id(name))
}

/// Labels of public service endpoints (`ec2.us-east-1.amazonaws.com` is not customer data).
const SERVICE_LABELS: &[&str] = &[
    "s3",
    "ec2",
    "sts",
    "iam",
    "sqs",
    "sns",
    "queue",
    "dynamodb",
    "streams",
    "lambda",
    "logs",
    "monitoring",
    "events",
    "kms",
    "secretsmanager",
    "ssm",
    "ssmmessages",
    "ec2messages",
    "ecr",
    "api",
    "dkr",
    "ecs",
    "eks",
    "elasticloadbalancing",
    "autoscaling",
    "rds",
    "runtime",
    "sagemaker",
    "bedrock",
    "bedrock-runtime",
    "bedrock-agent",
    "bedrock-agent-runtime",
    "athena",
    "glue",
    "dualstack",
    "fips",
    "cloudformation",
    "route53",
    "cloudfront",
    "organizations",
    "cognito-idp",
    "cognito-identity",
    "states",
    "kinesis",
    "firehose",
    "elasticache",
    "redshift",
    "redshift-data",
    "es",
    "apigateway",
    "appsync",
    "codecommit",
    "git-codecommit",
    "codebuild",
    "codedeploy",
    "codepipeline",
    "codeartifact",
    "cloudtrail",
    "config",
    "guardduty",
    "securityhub",
    "inspector",
    "inspector2",
    "macie2",
    "xray",
    "sso",
    "oidc",
    "portal",
    "signin",
    "console",
    "health",
    "support",
    "pricing",
    "ce",
    "budgets",
    "tagging",
    "servicecatalog",
    "batch",
    "elasticmapreduce",
    "elasticbeanstalk",
    "elasticfilesystem",
    "fsx",
    "backup",
    "transfer",
    "datasync",
    "dms",
    "mq",
    "kafka",
    "airflow",
    "textract",
    "comprehend",
    "translate",
    "polly",
    "transcribe",
    "rekognition",
    "lex",
    "models",
    "connect",
    "email",
    "ses",
    "pinpoint",
    "iot",
    "data",
    "control",
    "aps",
    "grafana",
    "acm",
    "acm-pca",
    "waf",
    "wafv2",
    "shield",
    "network-firewall",
    "directconnect",
    "globalaccelerator",
    "ram",
    "storagegateway",
    "timestream",
    "qldb",
    "neptune",
    "docdb",
    "memorydb",
    "aoss",
    "amplify",
    "workspaces",
    "ds",
    "identitystore",
    "access-analyzer",
    "account",
    "compute-optimizer",
    "servicediscovery",
    "service-quotas",
    "cloudsearch",
    "s3-control",
    "s3-accesspoint",
    "s3-website",
    "execute-api",
    "appsync-api",
    "emr-containers",
    "emr-serverless",
    "eks-auth",
    "ebs",
    "sdb",
    "swf",
    "aws",
    "cn",
    "ecr-public",
    "public",
    "s3-fips",
    "s3-external-1",
    "vpce",
    "efs",
    "elb",
    "cache",
    "compute",
    "compute-1",
    "us-gov",
    "q",
    "qbusiness",
    "kendra",
    "personalize",
    "forecast",
    "quicksight",
    "lakeformation",
    "resource-groups",
    "scheduler",
    "pipes",
    "schemas",
    "synthetics",
    "rum",
    "evidently",
    "applicationinsights",
    "internetmonitor",
    "oam",
    "license-manager",
    "outposts",
    "snowball",
    "mgn",
    "drs",
    "ivs",
    "mediaconvert",
    "medialive",
    "mediapackage",
    "mediastore",
    "kinesisvideo",
    "chime",
    "sms-voice",
    "social-messaging",
    "verifiedpermissions",
    "cleanrooms",
    "entityresolution",
    "datazone",
    "omics",
    "healthlake",
    "braket",
    "gamelift",
    "robomaker",
    "iotwireless",
    "greengrass",
    "iotevents",
    "iotsitewise",
];

fn is_region_label(l: &[u8]) -> bool {
    // (xx|eusc)(-gov|-iso[bef]?|-de)?-word-digits
    let parts: Vec<&[u8]> = l.split(|&c| c == b'-').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return false;
    }
    let last = parts[parts.len() - 1];
    !last.is_empty()
        && last.len() <= 2
        && all(last, |c| c.is_ascii_digit())
        && (parts[0].len() == 2 || parts[0] == b"eusc")
        && all(parts[0], |c| c.is_ascii_lowercase())
}

fn is_service_label(l: &[u8]) -> bool {
    is_region_label(l) || SERVICE_LABELS.iter().any(|s| s.as_bytes() == l)
}

/// Classifies `<labels>.amazonaws.com[.cn]`: `None` for public service endpoints.
fn aws_host(m: &[u8]) -> Option<(KindId, usize, usize)> {
    let lower: Vec<u8> = m.to_ascii_lowercase();
    let base = if lower.ends_with(b".amazonaws.com.cn") { 17 } else { 14 };
    let head = &lower[..lower.len() - base];
    let labels: Vec<&[u8]> = head.split(|&c| c == b'.').collect();
    // S3 virtual-hosted style: the bucket is everything before the `s3` label; mask only the bucket.
    if let Some(k) = labels.iter().position(|l| *l == b"s3" || l.starts_with(b"s3-")) {
        if k == 0 {
            return None;
        }
        let bucket_len: usize = labels[..k].iter().map(|l| l.len() + 1).sum::<usize>() - 1;
        return is_bucket(&m[..bucket_len]).then(|| (kid!("s3_bucket"), 0, bucket_len));
    }
    let customer = labels.iter().any(|l| !is_service_label(l));
    if !customer {
        return None;
    }
    let has = |name: &[u8]| labels.contains(&name);
    let kind = if has(b"rds") || has(b"docdb") || has(b"docdb-elastic") || has(b"neptune") {
        "rds_endpoint"
    } else if has(b"cache") || has(b"memorydb") {
        "elasticache_endpoint"
    } else if has(b"redshift") || has(b"redshift-serverless") {
        "redshift_endpoint"
    } else if has(b"elb") {
        "elb_dns"
    } else if has(b"eks") {
        "eks_endpoint"
    } else if has(b"execute-api") {
        "apigw_endpoint"
    } else if has(b"appsync-api") {
        "appsync_endpoint"
    } else if has(b"es") || has(b"aoss") {
        "opensearch_endpoint"
    } else if has(b"vpce") {
        "vpce_dns"
    } else if has(b"efs") {
        "efs_dns"
    } else if has(b"compute") || has(b"compute-1") {
        "ec2_hostname"
    } else if has(b"dkr") {
        "ecr_uri"
    } else {
        "aws_hostname"
    };
    Some((kinds::id(kind), 0, m.len()))
}

/// The leftmost-first match at or after `at` of the IPv4 rule,
/// `\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?:/[0-9]{1,2})?\b`, in a haystack of digits, dots and
/// slashes (ASCII word boundaries; outside the haystack is not a word). Greedy repetitions are tried longest
/// first, as a backtracking engine would.
fn ipv4_search(h: &[u8], at: usize) -> Option<(usize, usize)> {
    let digit = |p: usize| p < h.len() && h[p].is_ascii_digit();
    (at..h.len())
        .filter(|&x| digit(x) && (x == 0 || !digit(x - 1)))
        .find_map(|x| ipv4_at(h, x).map(|y| (x, y)))
}

/// The end of the IPv4 rule's match starting at `x` (where the leading word boundary holds).
fn ipv4_at(h: &[u8], x: usize) -> Option<usize> {
    // Digits at `p`, at most `max`.
    fn digits(h: &[u8], p: usize, max: usize) -> usize {
        let mut k = 0;
        while k < max && p + k < h.len() && h[p + k].is_ascii_digit() {
            k += 1;
        }
        k
    }
    // The word boundary after a digit: the next byte is not one.
    let boundary = |p: usize| p >= h.len() || !h[p].is_ascii_digit();
    let dot = |p: usize| p < h.len() && h[p] == b'.';
    for d1 in (1..=digits(h, x, 3)).rev() {
        let p1 = x + d1;
        if !dot(p1) {
            continue;
        }
        for d2 in (1..=digits(h, p1 + 1, 3)).rev() {
            let p2 = p1 + 1 + d2;
            if !dot(p2) {
                continue;
            }
            for d3 in (1..=digits(h, p2 + 1, 3)).rev() {
                let p3 = p2 + 1 + d3;
                if !dot(p3) {
                    continue;
                }
                for d4 in (1..=digits(h, p3 + 1, 3)).rev() {
                    let q = p3 + 1 + d4;
                    if q < h.len() && h[q] == b'/' {
                        for c in (1..=digits(h, q + 1, 2)).rev() {
                            if boundary(q + 1 + c) {
                                return Some(q + 1 + c);
                            }
                        }
                    }
                    if boundary(q) {
                        return Some(q);
                    }
                }
            }
        }
    }
    None
}

/// `str::parse::<u32>` of a run of ASCII digits.
fn parse_digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u32, |n, &c| {
        if c.is_ascii_digit() {
            n.checked_mul(10)?.checked_add((c - b'0') as u32)
        } else {
            None
        }
    })
}

/// Four parts of one to three digits between dots (what the IPv4 rule matches, without a prefix length): the
/// parts, and whether one has a leading zero. `None` for anything else.
fn dotted_quad(t: &[u8]) -> Option<([u32; 4], bool)> {
    if !(7..=15).contains(&t.len()) {
        return None;
    }
    let mut o = [0u32; 4];
    let (mut i, mut len, mut zero) = (0, 0, false);
    for &c in t {
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            zero |= len == 1 && o[i] == 0;
            o[i] = o[i] * 10 + d as u32;
            len += 1;
            if len > 3 {
                return None;
            }
        } else if c == b'.' && len > 0 && i < 3 {
            (i, len) = (i + 1, 0);
        } else {
            return None;
        }
    }
    (i == 3 && len > 0).then_some((o, zero))
}

fn ipv4_kind(m: &[u8], before: &[u8]) -> Option<KindId> {
    // A match of the IPv4 rule: a dotted quad, maybe `/` and one or two digits.
    let (addr, cidr) = match memchr::memchr(b'/', m) {
        Some(p) => (&m[..p], Some(&m[p + 1..])),
        None => (m, None),
    };
    let quad = dotted_quad(addr)?;
    if let Some(c) = cidr {
        let bits = parse_digits(c)?;
        if bits > 32 {
            return None;
        }
    }
    quad_kind(quad, before)
}

/// The kind of the address of a dotted quad (`before`: the text before it), or `None` when it is not one to mask.
fn quad_kind((o, zero): ([u32; 4], bool), before: &[u8]) -> Option<KindId> {
    if zero || o.iter().any(|&x| x > 255) {
        return None; // leading zeros are not how addresses are written
    }
    let private = o[0] == 10
        || (o[0] == 172 && (16..=31).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 100 && (64..=127).contains(&o[1]));
    if private {
        return Some(kid!("private_ip"));
    }
    let special = o[0] == 0 || o[0] == 127 || (o[0] == 169 && o[1] == 254) || o[0] >= 224;
    if special {
        return None;
    }
    // Version strings look like addresses: "Kong 3.9.0.1", "python 3.11.4.2", "v1.2.3.4".
    let small = o[0] < 10 && o[1..].iter().all(|&x| x < 20);
    let tail = &before[before.len().saturating_sub(1)..];
    if small || tail == b"v" || tail == b"V" {
        return None;
    }
    Some(kid!("public_ip"))
}

fn ipv6_ok(m: &[u8]) -> bool {
    let addr = match memchr::memchr(b'/', m) {
        Some(p) => {
            let bits: Option<u32> = std::str::from_utf8(&m[p + 1..]).ok().and_then(|s| s.parse().ok());
            if bits.is_none_or(|b| b > 128) {
                return false;
            }
            &m[..p]
        }
        None => m,
    };
    let groups = addr.split(|&c| c == b':').filter(|g| !g.is_empty()).count();
    if groups < 3 {
        return false;
    }
    let Ok(s) = std::str::from_utf8(addr) else { return false };
    let Ok(ip) = s.parse::<std::net::Ipv6Addr>() else {
        return false;
    };
    let first = ip.segments()[0];
    // Global unicast (2000::/3) and unique local (fc00::/7): what VPCs use.
    (0x2000..=0x3fff).contains(&first) || (first & 0xfe00) == 0xfc00
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Long tokens are read block by block: a condition met across the edge of two blocks counts.
    #[test]
    fn interesting_across_block_edges() {
        for piece in [
            "::1",
            "ABCDEFGHIJKLMNOP",
            "aws/",
            "-0123abcd",
            "-1_x",
            "IQoJb3",
            "1.2.3.4",
        ] {
            for at in 50..80 {
                let mut tok = "xyzw".repeat(40).into_bytes();
                tok.splice(at..at, piece.bytes());
                assert!(interesting(&tok), "{piece} at {at}");
                assert_eq!(interesting(&tok), interesting_v1(&tok), "{piece} at {at}");
            }
        }
        assert!(!interesting("xyzw".repeat(40).as_bytes()));
    }

    /// The start bytes read from the NFA cover what the DFA can start with, and add nothing on the built-in
    /// table (so the search tries no more starts than before).
    #[test]
    fn first_bytes_are_the_dfa_starts() {
        // In every context of the byte before (none, a word byte, another byte), the starts tried are exactly
        // those the DFA does not die on: none is skipped that could match, none tried that could not.
        let d = Detector::default();
        let a = &d.anchored;
        let mut cache = a.dfa.create_cache();
        let mut skipped_inside_words = 0;
        for before in [None, Some(b' '), Some(b'a'), Some(b'-'), Some(b'7')] {
            for b in 0..=255u8 {
                let hay: Vec<u8> = before.into_iter().chain([b]).collect();
                let (tried, alive) = (
                    a.may_start(&hay, hay.len() - 1),
                    a.may_start_by_dfa(&mut cache, before, b),
                );
                assert_eq!(
                    tried, alive,
                    "byte {b:#04x} after {before:?}: tried {tried}, DFA alive {alive}"
                );
                skipped_inside_words += (before == Some(b'a') && a.first[b as usize] != 0 && !tried) as usize;
            }
        }
        assert!(
            skipped_inside_words >= 36,
            "inside words: {skipped_inside_words} start bytes skipped"
        );
    }

    #[test]
    fn ipv4_shortcut_cases() {
        let d = Detector::default();
        // The alphabet worked out from the rules: dashes too, not letters or colons (IPv6, `i-…`).
        let alphabet: Vec<u8> = (0..=255u8).filter(|&b| d.ipv4_only[b as usize]).collect();
        assert_eq!(alphabet, b"-./0123456789");
        assert!(
            !d.anchored.only_rule_within(d.ipv4_rule, b"0123456789:"),
            "IPv6 matches digits and colons"
        );
        assert!(!d.anchored.only_rule_within(d.ipv4_rule, b"0123456789-i"), "`i-` ids");
        for hay in [
            "2.24.90.20141201-1",
            "host-10.0.0.1",
            "10-0-0-1",
            "1-10.0.0.1-2",
            "2024-06-15",
            "-10.1.2.3/24-",
            "10.0.1.17",
            "10.0.1.17/24",
            "127.0.0.1",
            "1.2.3.4.5",
            "1234.1.1.1",
            "10.1.1.1/333",
            "10.1.1.1/3/4",
            "203.0.113.25.",
            "..10.0.0.1..",
            "1.2.3",
            "10.0.0.1/8.1",
            "999.1.1.1",
            "1.1.1.1.1.1.1.1",
            "54.239.28.85",
            "10.0.0.01",
            "100.64.0.1/10/",
            "/10.0.0.1",
            "3.11.4",
            "",
        ] {
            let [fast, regex] = d.pattern_matches(hay.as_bytes());
            assert_eq!(fast, regex, "{hay}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// `interesting` says what its first version said: on short tokens made of its anchors' pieces, on long
        /// base64-like ones with a piece inside, and on tokens at the edge of one condition.
        #[test]
        fn interesting_is_its_first_version(
            short in "(r-|ou-|da2-)?([A-Za-z0-9+/=_:.%-]|aws|AWS|aWs|amz-|s3|S3|alias/|ip-|cloudfront|internal|beanstalk|IQoJb3|ABSK|%3D|%2F|%22|%2D|%41|arn:aws:|::|-us-east-1_|-[0-9a-fA-F]{7,9}|-[a-z]{8}|[A-Z0-9]{15,17}|[0-9]{1,3}\\.){0,8}",
            long in "[A-Za-z0-9+/]{40,300}",
            piece in "(aws[/_%]|s3/|ip-|alias/|CloudFront|-[0-9a-f]{8}|-[g-z]{9}|::1|[A-Z]{16}|1_)?",
            at in 0usize..300,
            edge in "[a-z]{0,3}-[0-9a-fA-Fg-z]{6,10}([.:_/-][a-z]{0,3})?|[a-z]{0,3}[aA][wW][sS]_[A-Z]{1,4}_[0-9]{1,4}|[0-9.:]{4,14}|([0-9a-f]{1,2}:){6,7}[0-9a-f]|[a-z]{0,2}-[0-9a-z]_[A-Za-z]{3}",
        ) {
            let at = at.min(long.len());
            let long = format!("{}{piece}{}", &long[..at], &long[at..]);
            for tok in [&short, &long, &edge] {
                prop_assert_eq!(interesting(tok.as_bytes()), interesting_v1(tok.as_bytes()), "{:?}", tok);
            }
        }

        /// `interesting` is the patterns' prefilter: a token it turns away holds no match of the pattern table
        /// (the meta regex, unanchored). Here on UUIDs, whose last dash it does not count ([`uuid_last_dash`]),
        /// after keys, id prefixes, a region and other bytes.
        #[test]
        fn interesting_turns_away_no_match_around_uuids(
            pre in "|[a-z_]{1,12}=|[a-z0-9]{1,6}-|us-east-1:|us-west-2_|i-|vpc-|ou-|db-|d-|e-|key/|[A-Za-z0-9:/._=-]{0,14}",
            uuid in "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-f]{8}-[0-9a-f]{4}-[a-f]{4}-(dead|beef|face|[a-f]{4})-[0-9a-f]{12}",
            post in "|[.,:/_=-][a-zA-Z0-9]{0,9}",
        ) {
            let d = Detector::default();
            let tok = format!("{pre}{uuid}{post}");
            if !interesting(tok.as_bytes()) {
                let [_, regex] = d.pattern_matches(tok.as_bytes());
                prop_assert!(regex.is_empty(), "{:?}: {:?}", tok, regex);
            }
        }

        /// A [`Window`] holds what [`normalize`] makes of its text, and a keyword when the normalized text does.
        #[test]
        fn window_is_normalize_and_holds_keyword(raw in "([-_ :=\"]?(kms|KMS|key-id|keyid|cmk|account|Acct|owner|zone|secret|rest_api|api|ke|ac|[a-zA-Z0-9]{1,4})){0,12}") {
            let raw = &raw.as_bytes()[..raw.len().min(Window::CAP)];
            let mut norm = Vec::new();
            normalize(raw, &mut norm);
            let window = Window::new(raw);
            prop_assert_eq!(window.norm(), &norm[..]);
            for shape in [Shape::Account, Shape::Uuid, Shape::Secret40, Shape::Hex64, Shape::HostedZone,
                          Shape::CloudFrontId, Shape::ApiGwId, Shape::Mac, Shape::SessionTokenLong] {
                // Its first test reads three bytes of every keyword.
                prop_assert!(shape_keywords(shape).iter().all(|k| k.len() >= 3));
                prop_assert_eq!(window.holds_keyword(shape), holds_keyword(&norm, shape), "{:?} {:?}", shape, norm);
            }
        }

        /// [`keyword_letter`]'s claim: every keyword of the shape holds its letter, so a text without it holds
        /// no keyword.
        #[test]
        fn keyword_letters_are_in_every_keyword(raw in "[a-zA-Z0-9 _-]{0,40}") {
            let mut norm = Vec::new();
            normalize(raw.as_bytes(), &mut norm);
            for shape in [Shape::Account, Shape::Uuid, Shape::Secret40, Shape::Hex64, Shape::HostedZone,
                          Shape::CloudFrontId, Shape::ApiGwId, Shape::Mac, Shape::SessionTokenLong] {
                if let Some(c) = keyword_letter(shape) {
                    prop_assert!(shape_keywords(shape).iter().all(|k| k.as_bytes().contains(&c)), "{:?}", shape);
                    if !raw.as_bytes().iter().any(|b| b.to_ascii_lowercase() == c) {
                        prop_assert!(!holds_keyword(&norm, shape));
                    }
                }
            }
        }

        /// On digits, dots and slashes, the IPv4 shortcut finds what the regex path finds.
        #[test]
        fn ipv4_shortcut_equals_regex(hay in "[0-9./-]{0,40}", hay2 in "(1?[0-9]{1,3}[./-]){0,6}[0-9]{0,4}") {
            let d = Detector::default();
            for h in [hay.as_bytes(), hay2.as_bytes()] {
                let [fast, regex] = d.pattern_matches(h);
                prop_assert_eq!(fast, regex);
            }
        }
    }

    /// The block scan with the portable code (no AVX2) and with the best the CPU has, against `find_reference`
    /// (and `find`, which scans short texts byte by byte).
    fn assert_same(d: &Detector, text: &[u8]) {
        let mut want = Vec::new();
        d.find_reference(text, KeyContext::default(), &mut want);
        let mut found = Vec::new();
        d.find(text, KeyContext::default(), &mut found);
        assert_eq!(found, want);
        let mut got = Vec::new();
        d.find_blocks(text, KeyContext::default(), &mut got);
        let show = |v: &[Finding]| -> Vec<String> {
            v.iter()
                .map(|f| {
                    format!(
                        "{}={}",
                        d.kind(f.kind).name,
                        String::from_utf8_lossy(&text[f.start..f.end])
                    )
                })
                .collect()
        };
        assert_eq!(show(&got), show(&want), "in {:?}", String::from_utf8_lossy(text));
        for cls in Classifier::every() {
            let mut each = Vec::new();
            d.scan_with(&cls, text, &mut each);
            assert_eq!(
                show(&each),
                show(&want),
                "{:?}, in {:?}",
                cls.level(),
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn fast_scan_equals_reference_on_seed_samples() {
        let d = Detector::default();
        let corpus = include_str!("../tests/data/seed-samples.txt");
        for line in corpus.lines() {
            assert_same(&d, line.as_bytes());
        }
        assert_same(&d, corpus.as_bytes());
        // Every alignment against the block and segment boundaries.
        let mut shifted = String::new();
        for k in 0..70 {
            shifted.clear();
            shifted.push_str(&" ".repeat(k));
            shifted.push_str(corpus);
            assert_same(&d, shifted.as_bytes());
        }
    }

    /// Pieces of text the detector reacts to: identifiers, near misses, keywords, keys, flags, separators.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            // identifiers and near misses
            "(i|vpc|sg|subnet|ami|vol|eni|r|o|p|h|ou|j|d|e|db|mrk|da2)-[0-9a-f]{4,18}",
            "(i|vpc|sg|subnet|x|my)-[a-f]{6,18}|[a-z]{2,6}-[a-z]{8,10}",
            "(AKIA|ASIA|AIDA|AROA|ABSK|IQoJb3|ZX|E)[A-Z0-9]{6,20}",
            "arn:aws(-cn)?:(iam|s3|lambda|kms)::?[0-9]{12}?:(role|key|function)?/?[a-z0-9-]{0,12}",
            "arn%3Aaws%3Aiam%3A%3A[0-9]{12}%3Arole%2F[a-z]{3}",
            "(10|172|192|127|54|3)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
            "[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,8}(/[0-9]{2})?",
            "[0-9]{12}|[0-9]{4}-[0-9]{4}-[0-9]{4}|[0-9]{1,20}",
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "(request_id|KeyId|kms_key|Username|trace|id|us-east-1)?[=:]?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}[.,:]?",
            "[0-9a-f]{2}(:[0-9a-f]{2}){5}",
            "[A-Za-z0-9/+]{40}|[0-9a-f]{64}|[a-z0-9]{10}",
            "(s3|s3a|https?)://[a-z0-9.-]{3,20}(\\.s3\\.amazonaws\\.com)?/[a-z]{0,5}",
            "[a-z0-9-]{1,12}\\.(us-east-1\\.)?(rds|elb|cache|execute-api|vpce|s3)?\\.?amazonaws\\.com(\\.cn)?",
            "(ip|ec2)-[0-9]{1,3}-[0-9]{1,3}-[0-9]{1,3}-[0-9]{1,3}(\\.ec2\\.internal)?",
            "d[a-z0-9]{13}\\.cloudfront\\.net|[a-z-]{3,8}\\.elasticbeanstalk\\.com",
            "us-east-1_[A-Za-z0-9]{9}|us-west-2:[0-9a-f-]{36}|alias/[A-Za-z]{3,8}|/aws/lambda/[a-z-]{3,9}",
            "AWS_[A-Z0-9_]{2,8}_[0-9]{2,4}|aws_[a-z]{2,6}|X-Amz-(Credential|Signature)=[A-Za-z0-9%]{4,20}",
            // keywords, keys and flags
            "(account|owner|kms|key|secret|zone|hostedzone|distribution|cloudfront|restapi|apigw|macaddress|principal)",
            "(bucket|buckets|s3|rds|lambda|dynamodb|redshift|sqs|sns|ecr|eks|ecs|glue|cloudformation|function|table|queue|cluster|instance|db|repo|stack|logs|topic|job)",
            "(Bucket|S3|RDS|Lambda|AccountId|OwnerId|KeyId|HostedZoneId|SecretAccessKey|RestApiId|BucketName|FunctionName|StackName|RoleName)[:=]?",
            "--(bucket|owner-ids|account-id|key-id|function-name|rest-api-id|hosted-zone-id|verbose)(=[a-z0-9-]{1,12})?",
            "[a-z_]{1,10}_(bucket|stackname|dbinstance)",
            "(https://x\\.io/a)?[?&](accountId|owner|bucket|KeyId|aws_secret_access_key|r|x_id)=[a-z0-9/-]{0,12}&?",
            // ordinary text
            "[A-Za-z]{1,12}|[a-z]{1,6}[.:/=_-][a-z0-9]{1,8}|[0-9]{1,4}[.:/-][0-9]{1,4}([.:/-][0-9]{1,4})?",
            "2024-06-15T10:30:4[0-9]\\.[0-9]{3}Z|v?[0-9]\\.[0-9]{1,2}\\.[0-9]{1,2}(\\.[0-9])?",
            // separators
            "[ ,;:=\"'()\\[\\]{}<>|\t\n]{1,3}|\\\\[ntrbf/]|  and | or |, and |[.!?]{1,2}|한국어|—|\u{1F600}",
            "%(3D|2F|22|20|2D|41|3A|2C)|\\\\u00(22|3d|26|41|2d|e9)|\\\\x(22|3d|41)",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// The fast scan finds what the reference finds, on text built from pieces the detector reacts to.
        #[test]
        fn fast_scan_equals_reference(parts in proptest::collection::vec((piece(), "[ \t\n,]{0,2}"), 0..40)) {
            let text: String = parts.iter().map(|(p, sep)| format!("{p}{sep}")).collect();
            let d = Detector::default();
            assert_same(&d, text.as_bytes());
        }

        /// And on arbitrary bytes.
        #[test]
        fn fast_scan_equals_reference_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let d = Detector::default();
            assert_same(&d, &bytes);
        }
    }

    /// A credential longer than its usual length is found whole, never cut inside its token (the rest would
    /// stay glued to the placeholder, which then neither reads as one nor comes back): a Bedrock key of 300
    /// characters, a role session name of 70 (found by the `detect` fuzzer).
    #[test]
    fn long_credentials_are_found_whole() {
        let d = Detector::default();
        for (token, kind) in [
            (format!("ABSK{}", "A".repeat(300)), "bedrock_api_key"),
            (format!("ABSK{}FA==", "Ab1+/".repeat(60)), "bedrock_api_key"),
            (format!("AROAABCDEFGHIJKLMNOP:{}", "a".repeat(70)), "iam_unique_id"),
            (format!("ABSK{}_na_meAAAA", "A".repeat(120)), "bedrock_api_key"),
            // (The word glued after the first holds a second key: one finding, not two overlapping ones. Found
            // by the `detect` fuzzer.)
            (format!("ABSK{a}=ABSK{a}", a = "A".repeat(120)), "bedrock_api_key"),
            (format!("ABSK{}==_x1", "Ab1+/".repeat(30)), "bedrock_api_key"),
            (format!("IQoJb3JpZ2luX2Vj{}_tail", "A".repeat(40)), "session_token"),
        ] {
            let text = format!("key {token} end");
            let mut out = Vec::new();
            d.find(text.as_bytes(), KeyContext::default(), &mut out);
            let got: Vec<_> = out
                .iter()
                .map(|f| (d.kind(f.kind).name.to_string(), &text[f.start..f.end]))
                .collect();
            assert_eq!(got, [(kind.to_string(), token.as_str())]);
            assert_same(&d, text.as_bytes());
        }
    }

    /// Cases the random tests are unlikely to build.
    #[test]
    fn fast_scan_equals_reference_on_edge_cases() {
        let d = Detector::default();
        let cases = [
            "2600:1f18:47d3:8c00:1:2:3:4",
            "addr 2600:1f18:47d3:8c00:0000:0000:0000:0001/64 and fd12:3456:789a:1:2:3:4:5",
            "02:58:f5:ef:4b:06 and \"MacAddress\": \"02:58:f5:ef:4b:06\"",
            "x\\nmy-bucket-1 and S3 bucket\\nmy-bucket-2 and \\/aws/lambda/fn-1",
            "foo>:bar Bucket>:my-bucket-1 --bucket>=my-bucket-2",
            "Bucket:\nmy-bucket-3",
            "buckets: my-a-1, my-b-2 and my-c-3, and my-d-4 or my-e-5",
            "--bucket my-bucket-4 --owner-ids 123456789012 210987654321 --account-id=123456789012",
            "s3_logs_bucket = my-logs-5; AccountId: 123456789012; KeyId=1234abcd-12ab-34cd-56ef-1234567890ab",
            "/hostedzone/Z1D633PJN98FT9 hostedzone Z3M3LMPEXAMPLE1 CloudFront distribution EDFDVBD6EXAMPLE",
            "restapi a1b2c3d4e5 and apigw 1a2b3c4d5e",
            "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AKIAIOSFODNN7EXAMPLE",
            "owner 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
            "us-east-1_EXAMPLE12 us-east-1:1cf667a2-49a6-454b-9e45-23199EXAMPLE r-ab12 x:r-ab12 ou-ab12-cd34ef56",
            "sgw-12345678 sgw-ABCDEFAB p-AB_CD_EF_12 s3a://my-bucket-9/x s3n://b1c/x",
            "a1.b2.c3.d4:r-ab12 1.2.3.4:s3a://bkt-1/k 10.0.0.1/8.1 v1.2.3.4 Kong 3.9.0.1",
            "vpc-aaaabbbb and x subnet-abcdefab sg-aaaaaaaaaaaaaaaaa. my-deadbeef follow-upgrades",
            "--target-account-ids 123456789012 --account-ids 210987654321",
            // A `:` or `=` that starts a token: the previous token is its key when nothing but operators follows
            // it in the token (the anchor moves to the byte after it, or to the end marker when it is alone).
            "AccountId = 123456789012 OwnerId == 210987654321 KeyId =. 1234abcd-12ab-34cd-56ef-1234567890ab",
            "Bucket := my-bucket-5 Bucket =:my-bucket-6 Bucket =my-bucket-7 owner :123456789012 owner :. 123456789012",
            "{\"latency_ms\":25,\"OwnerId\":123456789012,\"AccountId\" :210987654321,\"KeyId\" = \"1234abcd-12ab-34cd-56ef-1234567890ab\"}",
            "x=\n= account =\t123456789012 =\"210987654321\" = 2 =",
            // Tokens only key anchors bring to the checks, whose keys are read at the scan (`key_only_may`).
            "map: region: x += 2 \"statusCode\": u16> user_id=732 timeout = 30 a.b.c:443 OwnerId> x:OwnerId=123456789012",
            "owner_id=123456789012 \"OwnerId\":\"210987654321\" <OwnerId>123456789012</OwnerId> AccountId  =  123456789012",
            "my.bucket_name: my-bucket-8 x-Bucket=my-bucket-9 sqs_queue_name := q-1 KeyId: =1234abcd-12ab-34cd-56ef-1234567890ab",
            "k:AccountId:123456789012 id=KeyId=1234abcd-12ab-34cd-56ef-1234567890ab +AccountId=123456789012 _id: 1234-5678",
            // Keys of name values (which hold no pattern or shape anchor): only the key can bring them.
            "function_name=my-function \"function_name\":\"my-fn-2\" FunctionName = my-fn-3 role_name: admin-role",
            "x.table_name=orders-v2 cluster-name:prod-1 <StackName>prod-stack</StackName> QueueName := jobs-1 tn=x",
            // Other bytes before a key's last two characters (its third is further back).
            "\"FunctionNa_me\":\"my-fn-4\" StackNa-me=prod-2 Bucket-Na.me: my-bucket-10 Role_Na_me = admin-2",
            // Operators that start a token and go on (`==`, `=:`): the previous token is the key.
            "FunctionName == my-fn-5 Bucket =: my-bucket-11 StackName :== prod-3 RoleName =. admin-3",
        ];
        for c in cases {
            assert_same(&d, c.as_bytes());
        }
    }

    /// Matches of every rule of the pattern table (generated from the rule, without its `\\b`), alone and in
    /// contexts: what the fast scan's anchors and checks must let through. Every rule's pattern must be one
    /// the generator understands (a new rule with a construct it does not is a test failure to look at).
    #[test]
    fn fast_scan_equals_reference_on_every_rule() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let d = Detector::default();
        let mut runner = TestRunner::deterministic();
        let contexts: &[(&str, &str)] = &[
            ("", ""),
            (" ", " "),
            ("x", "x"),
            ("(", ")."),
            ("key: ", ","),
            ("--id=", ""),
            ("\"a\": \"", "\""),
            ("account ", " "),
            ("1.2.", ".3"),
            ("-", "-"),
        ];
        for rule in rules() {
            let pattern = rule.pattern.replace("\\b", "");
            let gen = proptest::string::string_regex(&pattern)
                .unwrap_or_else(|e| panic!("the generator does not take {pattern}: {e}"));
            for _ in 0..150 {
                let m = gen.new_tree(&mut runner).map(|t| t.current()).unwrap_or_default();
                for (pre, post) in contexts {
                    assert_same(&d, format!("{pre}{m}{post}").as_bytes());
                }
            }
        }
    }

    /// Long texts: runs and flags across 64-byte blocks and 8 KiB segments, every alignment of a few.
    #[test]
    fn fast_scan_equals_reference_on_long_text() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let d = Detector::default();
        let mut runner = TestRunner::deterministic();
        let strategy = proptest::collection::vec((piece(), "[ \n]{1}"), 800..1600);
        for round in 0..6 {
            let parts = strategy.new_tree(&mut runner).map(|t| t.current()).unwrap_or_default();
            let text: String = parts.iter().map(|(p, sep)| format!("{p}{sep}")).collect();
            let pad = " ".repeat(round * 13);
            assert_same(&d, format!("{pad}{text}").as_bytes());
            // A token longer than a block, a run longer than two.
            let long = format!("{pad}{}{text}{}", "x".repeat(150), "AKIA".repeat(60));
            assert_same(&d, long.as_bytes());
        }
    }
}
