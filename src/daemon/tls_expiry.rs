//! When the certificates lakeflyd serves stop being valid: each leaf's `notAfter`, shown
//! with the host names it serves (`lakefly certs`) and warned about in the log whenever
//! the certificates are read (start, SIGHUP) as the date nears. lakeflyd does not renew
//! certificates (no ACME), so the date is the operator's to watch.

use super::server_tls::TlsFiles;

/// From this many days before expiry, each read of the certificates warns.
pub const WARN_DAYS: i64 = 21;

/// When the certificate `der` stops being valid, as Unix seconds; `None` when it cannot
/// be read as X.509 (rustls accepted it, so this does not happen with a real one).
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// `expires` as RFC 3339 (UTC).
pub fn rfc3339(expires: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(expires, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// What to warn about a certificate from `files` that expires at `expires`, seen at
/// `now` (both Unix seconds): nothing while it has more than [`WARN_DAYS`] left.
pub fn warning(files: &TlsFiles, expires: i64, now: i64) -> Option<String> {
    let left = expires - now;
    let when = rfc3339(expires).unwrap_or_else(|| expires.to_string());
    let cert = files.cert.display();
    let renew = "renew it, then `systemctl reload lakeflyd` (SIGHUP) reads it again";
    if left <= 0 {
        return Some(format!(
            "the {} certificate {cert} expired at {when}: clients refuse it; {renew}",
            files.role
        ));
    }
    let days = left / 86_400;
    (days < WARN_DAYS).then(|| {
        format!(
            "the {} certificate {cert} expires at {when}, in {days} day{}; {renew}",
            files.role,
            if days == 1 { "" } else { "s" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> TlsFiles {
        TlsFiles {
            role: "edge",
            cert: "/etc/lakefly/cert.pem".into(),
            key: "/etc/lakefly/key.pem".into(),
        }
    }

    #[test]
    fn the_fixture_certificate_has_a_readable_expiry() {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tls/cert.pem"
        ))
        .expect("fixture");
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let der = tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .next()
            .expect("a certificate")
            .expect("PEM");
        let expires = not_after(&der).expect("notAfter");
        // Made for the tests with a long validity, after 2020.
        assert!(expires > 1_577_836_800, "{expires}");
        assert_eq!(not_after(b"not a certificate"), None);
    }

    #[test]
    fn warnings_start_three_weeks_before_and_say_what_to_do() {
        let now = 1_800_000_000;
        assert_eq!(warning(&files(), now + 30 * 86_400, now), None);
        let soon = warning(&files(), now + 5 * 86_400 + 60, now).expect("warned");
        assert!(
            soon.starts_with("the edge certificate /etc/lakefly/cert.pem expires at ")
                && soon.contains("in 5 days")
                && soon.contains("systemctl reload lakeflyd"),
            "{soon}"
        );
        let gone = warning(&files(), now - 1, now).expect("warned");
        assert!(
            gone.contains("expired at") && gone.contains("clients refuse it"),
            "{gone}"
        );
    }
}
