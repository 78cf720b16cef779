//! The `WebhookNotifier` itself: one delivery is one request. Retrying a failed one is
//! the outbox's job: a retryable error carries the server's `Retry-After` to it.

use std::fmt;
use std::time::{Duration, SystemTime};

use alertcore::{BuildError, Context, Format, Notification, Notifier, NotifyError};
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use url::Url;

use crate::KIND;
use crate::body::{self, Body, Preset};
use crate::client::LazyClient;
use crate::config::WebhookConfig;
use crate::error::WebhookError;
use crate::retry::parse_retry_after;
use crate::secret::Secret;

/// How much of an error answer's body goes into the error message.
const ERROR_BODY_LIMIT: usize = 512;
/// How much of a successful answer is read (so the connection can be reused); the rest
/// is dropped with the connection.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Sends alerts as HTTP POST requests: the versioned JSON document, a preset (Slack,
/// ntfy, Alertmanager) or a template of your own.
///
/// Build it with [`WebhookConfig::build`] (from a config table) or
/// [`WebhookNotifier::builder`]. The HTTP client is made on the first delivery and then
/// reused, keeping connections alive between alerts.
pub struct WebhookNotifier {
    pub(crate) url: Url,
    pub(crate) endpoint: String,
    pub(crate) preset: Option<Preset>,
    pub(crate) body: Body,
    pub(crate) content_type: HeaderValue,
    pub(crate) content_type_str: String,
    pub(crate) headers: HeaderMap,
    pub(crate) token: Option<Secret>,
    pub(crate) hmac_secret: Option<Secret>,
    pub(crate) signature_header: HeaderName,
    pub(crate) timeout: Duration,
    pub(crate) client: LazyClient,
}

impl fmt::Debug for WebhookNotifier {
    /// Shows where alerts go by scheme, host and port (a webhook URL's path is often its
    /// secret), header names but not values, and where secrets are read, never a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("endpoint", &self.endpoint)
            .field("body", &self.body)
            .field("content_type", &self.content_type_str)
            .field(
                "headers",
                &self
                    .headers
                    .keys()
                    .map(HeaderName::as_str)
                    .collect::<Vec<_>>(),
            )
            .field("token", &self.token)
            .field("hmac_secret", &self.hmac_secret)
            .field(
                "signature_header",
                &self
                    .hmac_secret
                    .as_ref()
                    .map(|_| self.signature_header.as_str()),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// An empty configuration to fill in with its setters, then [`WebhookConfig::build`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let notifier = alertcore_webhook::WebhookNotifier::builder()
    ///     .url("https://hooks.example.org/alertcore")
    ///     .hmac_secret_env("ALERTCORE_WEBHOOK_SECRET")
    ///     .timeout(Duration::from_secs(5))
    ///     .build()?;
    /// # Ok::<(), alertcore::BuildError>(())
    /// ```
    pub fn builder() -> WebhookConfig {
        WebhookConfig::default()
    }

    /// The preset in use, if any.
    pub fn preset(&self) -> Option<Preset> {
        self.preset
    }

    /// One request, no retry here: a retryable failure (429, 5xx, no connection, a
    /// timeout, a broken exchange) returns at once as [`NotifyError::retryable`], with
    /// the server's `Retry-After` if it sent one, and the outbox decides when to try
    /// again. Holding the caller to retry would hold the whole event with it.
    async fn deliver(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        let body = self.body.render(n, ctx, &self.content_type_str)?;
        let headers = self.request_headers(&body)?;
        let client = self.client.get().await?;
        self.attempt(client, headers, body).await?;
        Ok(())
    }

    /// The headers of the request: the configured ones, content type, bearer token and
    /// signature. Secrets are read now, so a rotated one is used from the next alert on.
    fn request_headers(&self, body: &[u8]) -> Result<HeaderMap, NotifyError> {
        let mut headers = self.headers.clone();
        headers.insert(CONTENT_TYPE, self.content_type.clone());
        if let Some(token) = &self.token {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.read()?)).map_err(|_| {
                    NotifyError::config(
                        KIND,
                        "the bearer token has characters a header cannot carry",
                    )
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if let Some(secret) = &self.hmac_secret {
            let value = HeaderValue::from_str(&signature(secret.read()?.as_bytes(), body))
                .map_err(|_| NotifyError::config(KIND, "cannot build the signature header"))?;
            headers.insert(self.signature_header.clone(), value);
        }
        Ok(headers)
    }

    /// One request. `Ok` for any 2xx answer.
    async fn attempt(
        &self,
        client: &reqwest::Client,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(), WebhookError> {
        let mut response = client
            .post(self.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        let status = response.status();
        if status.is_success() {
            // Read the answer so the connection goes back to the pool; a failure here
            // does not undo the delivery the status confirmed.
            let mut read = 0;
            while read < DRAIN_LIMIT {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    Ok(None) | Err(_) => break,
                }
            }
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut snippet = Vec::new();
        while snippet.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        snippet.truncate(ERROR_BODY_LIMIT);
        let body = alertcore::transport::one_line(String::from_utf8_lossy(&snippet).trim());
        Err(WebhookError::Status {
            endpoint: self.endpoint.clone(),
            status: status.as_u16(),
            body,
            retry_after,
        })
    }

    /// Sorts a reqwest error into ours. reqwest's messages name the full URL, which
    /// may be the secret, so it is stripped.
    fn classify(&self, e: reqwest::Error) -> WebhookError {
        let endpoint = self.endpoint.clone();
        if e.is_timeout() {
            return WebhookError::Timeout {
                endpoint,
                timeout: self.timeout,
            };
        }
        if e.is_connect() {
            // A TLS handshake failure is a connect error too; a refused certificate
            // stays refused until someone changes it.
            let retryable = !has_tls_error(&e);
            return WebhookError::Connect {
                endpoint,
                retryable,
                source: Box::new(e.without_url()),
            };
        }
        if e.is_builder() {
            return WebhookError::Client(alertcore::chain(&e.without_url()));
        }
        WebhookError::Io {
            endpoint,
            source: Box::new(e.without_url()),
        }
    }
}

/// Whether a rustls error is somewhere in the chain. io errors carry it as their payload
/// (hyper-util wraps it twice), which `source()` skips, so look inside them.
fn has_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// `sha256=<hex of HMAC-SHA256(key, body)>`.
pub(crate) fn signature(key: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

#[async_trait::async_trait]
impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        KIND
    }

    /// A format with a body of its own is the HTTP body (without `preset` or
    /// `template`): tried on the sample alerts here, so that one that is not the JSON
    /// `content_type` promises fails when the configuration is loaded.
    fn check_format(&self, format: &Format) -> Result<(), BuildError> {
        if matches!(self.body, Body::Document) && body::has_own_body(format) {
            crate::config::try_template(
                &self.body,
                format.body_key(),
                &self.content_type_str,
                format,
            )?;
        }
        Ok(())
    }

    async fn notify(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        self.deliver(n, ctx).await
    }

    /// Slack and ntfy take one message per request; every other body can carry a
    /// group (see `Body::render_group`).
    fn check_group(&self) -> Result<(), String> {
        match self.preset {
            Some(p @ (Preset::Slack | Preset::Ntfy)) => Err(format!(
                "the {} preset takes one message per request: grouping needs the default \
                 document, the alertmanager preset or a template (bodies sent as one JSON array)",
                p.name()
            )),
            _ => Ok(()),
        }
    }

    /// One request for the whole group.
    async fn notify_group(
        &self,
        group: &[Notification],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        let body = self.body.render_group(group, ctx, &self.content_type_str)?;
        let headers = self.request_headers(&body)?;
        let client = self.client.get().await?;
        self.attempt(client, headers, body).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_format_tries_a_body_of_its_own_against_the_content_type() {
        let f = |body: &str| {
            let spec = alertcore::FormatSpec {
                body: Some(body.to_owned()),
                ..Default::default()
            };
            Format::compile(&spec, &alertcore::Formats::default(), Format::full()).unwrap()
        };
        let json = WebhookNotifier::builder()
            .url("http://127.0.0.1:1/")
            .build()
            .unwrap();
        json.check_format(Format::full()).unwrap();
        json.check_format(&f("{\"s\": {{ service | tojson }}}"))
            .unwrap();
        let e = json.check_format(&f("{{ service }} failed")).unwrap_err();
        assert_eq!(e.offending_key(), Some("body"));
        assert!(e.to_string().contains("valid JSON"), "{e}");
        let e = json
            .check_format(&f("{\"s\": \"{{ service }}\"}"))
            .unwrap_err();
        assert!(e.to_string().contains("tojson"), "{e}");
        let text = WebhookNotifier::builder()
            .url("http://127.0.0.1:1/")
            .content_type("text/plain")
            .build()
            .unwrap();
        text.check_format(&f("{{ service }} failed")).unwrap();
        // with a preset the format's body is only the text inside it
        let slack = WebhookNotifier::builder()
            .url("http://127.0.0.1:1/")
            .preset(Preset::Slack)
            .build()
            .unwrap();
        slack.check_format(&f("{{ service }} failed")).unwrap();
    }

    #[test]
    fn signature_matches_rfc_4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?"
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
