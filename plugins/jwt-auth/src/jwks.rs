//! Public keys from a JSON Web Key Set (RFC 7517): RSA keys for RS256, P-256 keys for ES256.
//!
//! Parsed once, at `init`. A key whose `use` is not `sig`, an unsupported `kty` (`oct`,
//! `OKP`, ...), another curve, or an `alg` of its family that is not RS256/ES256 is skipped;
//! a malformed key, an `alg` of another family, or an RSA modulus under 2048 bits is an error.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use p256::ecdsa::VerifyingKey as EcKey;
use p256::ecdsa::signature::Verifier as _;
use rsa::pkcs1v15::VerifyingKey as RsaKey;
use rsa::{BigUint, RsaPublicKey};
use sha2::Sha256;
use sluice_plugin_sdk::serde_json::{Map, Value};

use crate::token::Alg;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// JWK members are base64url; tolerate the `=` padding some tools write.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A usable verification key.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// An RSA key (RSASSA-PKCS1-v1_5 with SHA-256).
    Rs256(RsaKey<Sha256>),
    /// A P-256 key (ECDSA with SHA-256).
    Es256(EcKey),
}

/// One key of the set, with its `kid`.
#[derive(Debug, Clone)]
pub struct Jwk {
    /// The key's `kid`, matched against a token header's `kid`.
    pub kid: Option<String>,
    /// The key itself.
    pub key: PublicKey,
}

impl Jwk {
    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        match self.key {
            PublicKey::Rs256(_) => Alg::Rs256,
            PublicKey::Es256(_) => Alg::Es256,
        }
    }

    /// Whether `signature` (the JWS signature bytes) signs `input` under this key.
    pub fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            PublicKey::Rs256(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|signature| key.verify(input, &signature).is_ok()),
            PublicKey::Es256(key) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(input, &signature).is_ok()),
        }
    }
}

/// Parses a JWKS, `{"keys": [...]}`, into its usable keys; errors name the key.
pub fn parse(jwks: &Value) -> Result<Vec<Jwk>, String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwt-auth: `jwks` must be a JSON object with a `keys` array")?;
    let mut usable = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let key = key.as_object().ok_or_else(|| format!("jwt-auth: `jwks` key {index} is not an object"))?;
        let label = match key.get("kid") {
            None => format!("key {index}"),
            Some(Value::String(kid)) => format!("key {index} (kid {kid:?})"),
            Some(_) => return Err(format!("jwt-auth: `jwks` key {index}: `kid` is not a string")),
        };
        let error = |what: &str| format!("jwt-auth: `jwks` {label}: {what}");
        if let Some(jwk) = parse_key(key).map_err(|what| error(&what))? {
            usable.push(jwk);
        }
    }
    if usable.is_empty() {
        return Err("jwt-auth: `jwks` has no usable key (RS256: kty RSA; ES256: kty EC with crv P-256; \
                    `use` sig or unset)"
            .to_owned());
    }
    Ok(usable)
}

/// One key: `Ok(None)` when it is skipped, `Err` (without the key's label) when malformed.
fn parse_key(key: &Map<String, Value>) -> Result<Option<Jwk>, String> {
    let kty = string_member(key, "kty")?.ok_or("no `kty`")?;
    if string_member(key, "use")?.is_some_and(|usage| usage != "sig") {
        return Ok(None);
    }
    let alg = string_member(key, "alg")?;
    let kid = string_member(key, "kid")?.map(str::to_owned);
    let key = match kty {
        "RSA" => {
            if !fits(alg, "RS256", &["RS", "PS", "RSA"], kty)? {
                return Ok(None);
            }
            let n = BigUint::from_bytes_be(&bytes_member(key, "n")?);
            let e = BigUint::from_bytes_be(&bytes_member(key, "e")?);
            let bits = n.bits();
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA modulus is {bits} bits, at least {MIN_RSA_BITS} are required"));
            }
            let key = RsaPublicKey::new(n, e).map_err(|error| format!("bad RSA key: {error}"))?;
            PublicKey::Rs256(RsaKey::new(key))
        }
        "EC" => {
            if string_member(key, "crv")?.ok_or("no `crv`")? != "P-256" {
                return Ok(None);
            }
            if !fits(alg, "ES256", &["ES", "ECDH-ES"], kty)? {
                return Ok(None);
            }
            let (x, y) = (bytes_member(key, "x")?, bytes_member(key, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 `x` and `y` must be 32 bytes each".to_owned());
            }
            let point = [&[0x04][..], &x, &y].concat();
            PublicKey::Es256(EcKey::from_sec1_bytes(&point).map_err(|_| "not a point on P-256")?)
        }
        _ => return Ok(None),
    };
    Ok(Some(Jwk { kid, key }))
}

/// Whether a key with `alg` (when set) is usable as `wanted`: `false` for another algorithm
/// of the family (a prefix in `family`), an error for an algorithm of another family.
fn fits(alg: Option<&str>, wanted: &str, family: &[&str], kty: &str) -> Result<bool, String> {
    match alg {
        None => Ok(true),
        Some(alg) if alg == wanted => Ok(true),
        Some(alg) if family.iter().any(|prefix| alg.starts_with(prefix)) => Ok(false),
        Some(alg) => Err(format!("`alg` {alg:?} does not fit kty {kty}")),
    }
}

fn string_member<'a>(key: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match key.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn bytes_member(key: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let value = string_member(key, name)?.ok_or_else(|| format!("no `{name}`"))?;
    let bytes = B64.decode(value).map_err(|_| format!("`{name}` is not base64url"))?;
    if bytes.is_empty() {
        return Err(format!("`{name}` is empty"));
    }
    Ok(bytes)
}
