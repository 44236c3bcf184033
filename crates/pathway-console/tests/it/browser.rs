//! Browser tests: the console on port 0 over a simulated province, driven by
//! `node tests/console/run.mjs` (playwright-core with Debian's chromium,
//! axe-core): three and more departments sign in, every page is opened and
//! checked, refusals, the language switch, zero serious or critical axe
//! violations, keyboard-only use; screenshots in target/console-screenshots/.
//!
//! Nothing here is skipped: a missing chromium or node_modules fails the test
//! with the command that installs it.

use std::{path::PathBuf, process::Command};

use serde_json::json;

use crate::helpers::{province, text, token};

const CHROMIUM: &str = "/usr/bin/chromium";
const HARBIN: &str = "230100";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pages_languages_accessibility_and_keyboard() {
    let root = workspace();
    assert!(
        PathBuf::from(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install chromium: apt-get install -y chromium"
    );
    assert!(
        root.join("tests/console/node_modules/playwright-core")
            .exists()
            && root.join("tests/console/node_modules/axe-core").exists(),
        "tests/console/node_modules is missing: run npm ci --prefix tests/console"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: apt-get install -y nodejs npm"
    );

    let p = province(300).await;
    let persons = p.rows("dpf", "persons", &[]);
    let own = persons
        .iter()
        .find(|r| text(&r[1]) == HARBIN)
        .map(|r| text(&r[0]))
        .expect("a Harbin resident");
    let other = persons
        .iter()
        .find(|r| text(&r[1]) != HARBIN)
        .map(|r| text(&r[0]))
        .expect("a resident of another city");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = p.app();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stopped.await.ok();
            })
            .await
    });

    let tokens = json!({
        "committee": token("committee", None),
        "dpf_city": token("dpf", Some(HARBIN)),
        "civil_affairs": token("civil_affairs", None),
        "education": token("education", None),
        "auditor": token("auditor", None),
    });
    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("console-screenshots");
    let base = format!("http://127.0.0.1:{port}/console");
    let output = tokio::task::spawn_blocking({
        let root = root.clone();
        let shots = shots.clone();
        move || {
            Command::new("node")
                .current_dir(&root)
                .arg("tests/console/run.mjs")
                .arg(&base)
                .arg(&shots)
                .env("CONSOLE_TOKENS", tokens.to_string())
                .env("CONSOLE_OWN_PERSON", &own)
                .env("CONSOLE_OTHER_PERSON", &other)
                .output()
        }
    })
    .await
    .expect("join")
    .expect("node runs");
    stop.send(()).ok();
    server.await.expect("join").expect("serve");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}\n{stderr}\nscreenshots: {}", shots.display());
    assert!(
        output.status.success(),
        "browser tests failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
