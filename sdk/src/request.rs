//! Reading a [`ConnectRequest`]: headers, query parameters and bearer tokens.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::ConnectRequest;

/// Helpers on the HTTP upgrade request that `on-connect` sees.
pub trait ConnectRequestExt {
    /// The first value of header `name` (compared without regard to case).
    fn header(&self, name: &str) -> Option<&str>;

    /// Every value of header `name`, in request order.
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str>;

    /// The first value of query parameter `name`, decoded as a browser's form encoding is:
    /// `+` is a space, then `%XX` escapes are decoded (invalid UTF-8 becomes U+FFFD).
    /// A parameter without `=` has the empty value.
    fn query_param(&self, name: &str) -> Option<String>;

    /// The token of an `authorization: Bearer <token>` header (scheme without regard to
    /// case); `None` when the first `authorization` header is missing, has another scheme,
    /// or has no token.
    fn bearer_token(&self) -> Option<&str>;
}

impl ConnectRequestExt for ConnectRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| decode_query_component(key) == name)
            .map(|(_, value)| decode_query_component(value).into_owned())
    }

    fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(char::is_whitespace)?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` to space, then `%XX`.
pub fn decode_query_component(component: &str) -> Cow<'_, str> {
    if component.contains('+') {
        let spaced = component.replace('+', " ");
        Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
    } else {
        percent_decode_str(component).decode_utf8_lossy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Connection;

    fn request(query: &str, headers: &[(&str, &str)]) -> ConnectRequest {
        ConnectRequest {
            connection: Connection { id: 7, identity: None, remote_addr: "127.0.0.1:5000".into() },
            kind: crate::ConnectKind::Upgrade,
            method: "GET".into(),
            path: "/ws".into(),
            query: query.into(),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn query_params_are_form_decoded() {
        let req = request("a=1&token=x%2Ey%3D&b=hello+world%21&flag", &[]);
        assert_eq!(req.query_param("token").as_deref(), Some("x.y="));
        assert_eq!(req.query_param("b").as_deref(), Some("hello world!"));
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("missing"), None);
    }

    #[test]
    fn bearer_token_needs_the_bearer_scheme() {
        assert_eq!(request("", &[("authorization", "bearer  abc ")]).bearer_token(), Some("abc"));
        assert_eq!(request("", &[("authorization", "Basic abc")]).bearer_token(), None);
        assert_eq!(request("", &[("authorization", "Bearer")]).bearer_token(), None);
        assert_eq!(request("", &[]).bearer_token(), None);
    }

    #[test]
    fn headers_match_without_case() {
        let req = request("", &[("x-a", "1"), ("X-A", "2")]);
        assert_eq!(req.header("X-a"), Some("1"));
        assert_eq!(req.header_values("x-a").collect::<Vec<_>>(), ["1", "2"]);
    }
}
