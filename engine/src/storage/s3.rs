//! S3 through `object_store`'s `AmazonS3Builder`, with credentials from
//! aws-config's default provider chain unless static keys are configured.

use std::sync::Arc;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::{CredentialProvider, ObjectStore};

use crate::config::S3Config;
use crate::error::{Error, Result};

/// Adapts aws-config's credential chain (refreshing, cached) to object_store.
#[derive(Debug)]
struct AwsConfigCredentials(SharedCredentialsProvider);

#[async_trait::async_trait]
impl CredentialProvider for AwsConfigCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let creds = self.0.provide_credentials().await.map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        })?;
        Ok(Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_owned(),
            secret_key: creds.secret_access_key().to_owned(),
            token: creds.session_token().map(str::to_owned),
        }))
    }
}

pub(super) async fn build(config: &S3Config) -> Result<Arc<dyn ObjectStore>> {
    if config.bucket.is_empty() {
        return Err(Error::invalid("storage.trace.s3.bucket is required for the s3 backend"));
    }
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_allow_http(config.insecure)
        .with_virtual_hosted_style_request(!config.forcepathstyle);
    if !config.endpoint.is_empty() {
        let endpoint = if config.endpoint.contains("://") {
            config.endpoint.clone()
        } else {
            let scheme = if config.insecure { "http" } else { "https" };
            format!("{scheme}://{}", config.endpoint)
        };
        builder = builder.with_endpoint(endpoint);
    }
    if !config.access_key.is_empty() {
        builder = builder.with_access_key_id(&config.access_key).with_secret_access_key(&config.secret_key);
        if !config.session_token.is_empty() {
            builder = builder.with_token(&config.session_token);
        }
    }
    let aws = if config.region.is_empty() || config.access_key.is_empty() {
        Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
    } else {
        None
    };
    let region = match (&aws, config.region.is_empty()) {
        (_, false) => config.region.clone(),
        (Some(aws), true) => aws.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".to_owned()),
        (None, true) => "us-east-1".to_owned(),
    };
    builder = builder.with_region(region);
    if config.access_key.is_empty() {
        let provider = aws
            .as_ref()
            .and_then(|a| a.credentials_provider())
            .ok_or_else(|| Error::invalid("no S3 credentials: set storage.trace.s3.access_key or configure the AWS default chain"))?;
        builder = builder.with_credentials(Arc::new(AwsConfigCredentials(provider)));
    }
    match config.sse.kind.as_str() {
        "" | "SSE-S3" => {}
        "SSE-KMS" => {
            if config.sse.kms_key_id.is_empty() {
                return Err(Error::invalid("storage.trace.s3.sse.kms_key_id is required for SSE-KMS"));
            }
            builder = builder.with_sse_kms_encryption(&config.sse.kms_key_id);
        }
        other => return Err(Error::invalid(format!("unknown storage.trace.s3.sse.type {other:?} (SSE-KMS or SSE-S3)"))),
    }
    Ok(Arc::new(builder.build()?))
}
