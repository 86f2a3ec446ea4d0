//! RS256 and ES256 tokens end to end: jwt-auth gets its JWKS from a file through
//! `config_files`, and a key rotation written to that file takes effect on SIGHUP in the
//! real binary, for new connections, without a restart.

mod common;

use base64::Engine;
use common::*;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::json;
use std::process::Command;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn keys(file: &str) -> std::path::PathBuf {
    root().join("plugins/jwt-auth/tests/keys").join(file)
}

/// The DER of a PKCS#8 PEM file (test keys only).
fn der(file: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(keys(file)).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

/// A token for `sub`, valid for an hour, signed with the PEM key `file` as `alg` under `kid`.
fn signed(alg: &str, kid: &str, file: &str, sub: &str) -> String {
    let header = B64.encode(json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string());
    let claims = B64.encode(json!({"sub": sub, "exp": now() + 3600}).to_string());
    let input = format!("{header}.{claims}");
    let rng = ring::rand::SystemRandom::new();
    let signature = match alg {
        "RS256" => {
            let key = RsaKeyPair::from_pkcs8(&der(file)).unwrap();
            let mut out = vec![0; key.public().modulus_len()];
            key.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out).unwrap();
            out
        }
        _ => {
            let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der(file), &rng)
                .unwrap();
            key.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec()
        }
    };
    format!("{input}.{}", B64.encode(signature))
}

#[tokio::test]
async fn rs256_and_es256_keys_come_from_a_file_that_reloads_on_sighup() {
    let dir = std::env::temp_dir().join(format!("sluice-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(keys("jwks.json"), dir.join("jwks.json")).unwrap();
    let config = format!(
        "[plugins.jwt-auth]\npath = \"{}\"\nconfig_files = {{ jwks = \"jwks.json\" }}\n\
         [[routes]]\npath = \"/ws\"\nplugins = [\"jwt-auth\"]\n",
        wasm("jwt_auth").display()
    );
    std::fs::write(dir.join("gateway.toml"), config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["--config", dir.join("gateway.toml").to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let Spawned { mut child, addr, log } = spawn_listening(command);
    let (logged, mut reloads) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in log.map_while(Result::ok) {
            if line.contains("reload applied") || line.contains("reload rejected") {
                let _ = logged.send(line);
            }
        }
    });
    let url = format!("ws://{addr}/ws");
    let admitted = async |token: &str| try_connect(&url, Some(token)).await.map(|_| ()).map_err(|e| e.1);

    let (rsa1, ec1) =
        (signed("RS256", "rsa-1", "rsa.pem", "alice"), signed("ES256", "ec-1", "ec.pem", "bob"));
    let rsa2 = signed("RS256", "rsa-2", "rsa-other.pem", "carol");
    assert_eq!(admitted(&rsa1).await, Ok(()));
    assert_eq!(admitted(&ec1).await, Ok(()));
    let refused = admitted(&rsa2).await.unwrap_err();
    assert!(refused.contains("no RS256 key has the token's kid"), "{refused}");
    // A token signed by the right key but under the other key's kid is refused too.
    let forged = signed("RS256", "rsa-1", "rsa-other.pem", "mallory");
    assert!(admitted(&forged).await.unwrap_err().contains("bad signature"));

    // Rotation: the file now holds the other key set.
    std::fs::copy(keys("other.jwks.json"), dir.join("jwks.json")).unwrap();
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    let line = tokio::time::timeout(PATIENCE, reloads.recv()).await.unwrap().unwrap();
    assert!(line.contains("reload applied") && line.contains("jwt-auth"), "{line}");
    assert_eq!(admitted(&rsa2).await, Ok(()));
    assert_eq!(admitted(&signed("ES256", "ec-2", "ec-other.pem", "dave")).await, Ok(()));
    let retired = admitted(&rsa1).await.unwrap_err();
    assert!(retired.contains("no RS256 key has the token's kid"), "{retired}");

    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
