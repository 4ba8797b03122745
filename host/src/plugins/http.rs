//! Outbound HTTP for plugins: only to hosts both requested and granted, and only to public
//! addresses unless the operator allows private ones; checked again after DNS resolution.

use std::net::IpAddr;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The HTTP capability of one store.
pub struct HttpGrant {
    allowed: Vec<String>,
    allow_private: bool,
}

impl HttpGrant {
    /// Hosts (`name` or `name:port`) the plugin may reach.
    pub fn new(allowed: Vec<String>, allow_private: bool) -> Self {
        Self {
            allowed,
            allow_private,
        }
    }

    fn host_allowed(&self, host: &str, port: u16) -> bool {
        self.allowed.iter().any(|a| {
            a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(&format!("{host}:{port}"))
        })
    }
}

/// Whether an address is loopback, private, link-local (cloud metadata included), or otherwise
/// not a public destination.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

type Response = http::Response<WasiBody>;
type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

impl WasiHttpHooks for HttpGrant {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<(Response, IoFuture), HttpError>> + Send> {
        drop(fut);
        let host = request.uri().host().unwrap_or("").to_string();
        let https = request.uri().scheme_str() == Some("https");
        let port = request
            .uri()
            .port_u16()
            .unwrap_or(if https { 443 } else { 80 });
        let granted = self.host_allowed(&host, port);
        let allow_private = self.allow_private;
        Box::new(async move {
            if !granted {
                tracing::warn!(target: "plugin", host = host.as_str(), "outbound HTTP denied: host not granted");
                return Err(HttpError::HttpRequestDenied);
            }
            let addrs = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| HttpError::DnsError {
                    rcode: None,
                    info_code: None,
                })?;
            for a in addrs {
                if is_private(a.ip()) && !allow_private {
                    tracing::warn!(target: "plugin", host = host.as_str(), ip = %a.ip(), "outbound HTTP denied: private address");
                    return Err(HttpError::DestinationIpProhibited);
                }
            }
            let (resp, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((resp.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn grants_match_host_or_host_port() {
        let g = HttpGrant::new(vec!["s3.example.com".into(), "minio:9000".into()], false);
        assert!(g.host_allowed("S3.example.com", 443));
        assert!(g.host_allowed("minio", 9000));
        assert!(!g.host_allowed("minio", 80));
        assert!(!g.host_allowed("evil.com", 80));
    }
}
