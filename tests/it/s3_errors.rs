//! S3 failures a user can fix are one short line that says what to do,
//! against a real S3-compatible server: moto started here with
//! authentication on (a bucket, and a user with no permissions, made with
//! boto3 in its first unauthenticated requests), plus an endpoint nobody
//! listens on. Needs python3 with moto[server] and boto3 (`.ci/run`
//! installs them); outside CI the test is skipped with a note.

use std::process::{Child, Command, Stdio};

use crate::common::leafe_with;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const SETUP: &str = r#"
import sys, time, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
for _ in range(100):
    try:
        boto3.client("s3", **kw).create_bucket(Bucket="locked")
        break
    except Exception:
        time.sleep(0.2)
iam = boto3.client("iam", **kw)
keys = []
for user in ["nobody", "admin"]:
    iam.create_user(UserName=user)
    k = iam.create_access_key(UserName=user)["AccessKey"]
    keys += [k["AccessKeyId"], k["SecretAccessKey"]]
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}')
print(" ".join(keys))
"#;

#[test]
fn s3_errors_say_what_is_wrong_in_one_line() {
    let have = Command::new("python3")
        .args(["-c", "import moto, boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("CI").is_err(),
            "CI must check S3 errors: pip install 'moto[server]'"
        );
        eprintln!("note: python3 with moto and boto3 not found; S3 error test skipped");
        return;
    }
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    // Authentication on after the six requests the setup makes.
    let _moto = Moto(
        Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "6")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = Command::new("python3")
        .args(["-c", SETUP, &endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = String::from_utf8(out.stdout).unwrap();
    let keys: Vec<&str> = keys.split_whitespace().collect();
    let [key, secret, admin_key, admin_secret] = keys[..] else {
        panic!("setup printed {keys:?}");
    };
    let vars = |endpoint: &str, key: &str, secret: &str| {
        vec![
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("AWS_ACCESS_KEY_ID", key.to_string()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    };
    let dead = format!("http://127.0.0.1:{}", free_port());
    for (store, env, want) in [
        (
            "s3://no-such-bucket/p",
            vars(&endpoint, admin_key, admin_secret),
            "bucket `no-such-bucket` does not exist",
        ),
        (
            "s3://locked/p",
            vars(&endpoint, "AKIAWRONGWRONGWRONG1", "nope"),
            "the credentials were refused",
        ),
        (
            "s3://locked/p",
            vars(&endpoint, key, secret),
            "access denied",
        ),
        ("s3://locked/p", vars(&dead, key, secret), "cannot reach"),
    ] {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for args in [
            vec!["runs", "--store", store],
            vec!["synth", "--store", store, "--episodes", "3"],
        ] {
            let (code, _, err) = leafe_with(&args, &env);
            assert_eq!(code, 2, "{args:?}: {err}");
            let err = err.trim();
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains(want), "{args:?}: want `{want}` in: {err}");
            assert!(!err.contains('<'), "server XML in: {err}");
            assert!(err.len() < 400, "too long: {err}");
        }
    }
}
