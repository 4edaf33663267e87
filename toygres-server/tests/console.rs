//! The web console in a real, headless Chromium against the real `toygres serve`: create from
//! the form and watch it run, copy the psql command and connect with it and the password shown
//! once, see a health check, delete with the name typed; the instance's actions (stop, start, a
//! parameter, a new password shown once, a backup, a restore into a new instance, deletion
//! protection, a delete with a final backup) checked with psql, and the server's refusals (a
//! start of a running instance, a protected delete, a read-only session) shown as the API words
//! them; sign in with tokens, a read-only token refused, sign-out; forged and cross-site form posts refused; every page at 1280 and 390 px
//! (screenshots into `docs/console/` when `TOYGRES_SCREENSHOTS_DIR` says so, see
//! `scripts/console-screenshots.sh`).

mod support;

use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use support::browser::{Browser, PAGE_LIMIT};
use support::{OPERATION_LIMIT, Server, StartOptions, TestResult, Workspace};

const ADMIN_TOKEN: &str = "console-admin-token-0123456789";
const READER_TOKEN: &str = "console-reader-token-0123456789";

fn tokens() -> String {
    format!("admin:{ADMIN_TOKEN},readonly:{READER_TOKEN}")
}

/// A page's text through the browser, as a user reads it.
async fn body_text(browser: &Browser) -> Result<String, support::TestError> {
    let body = browser.find("body").await?;
    browser.text(&body).await
}

/// Fills the create form and submits it; returns the password the next page shows.
async fn create_from_form(
    browser: &Browser,
    base: &str,
    name: &str,
    password: Option<&str>,
) -> Result<String, support::TestError> {
    browser.goto(&format!("{base}/console/create")).await?;
    browser
        .type_into(&browser.find("#name").await?, name)
        .await?;
    if let Some(password) = password {
        browser
            .type_into(&browser.find("#password").await?, password)
            .await?;
    }
    browser
        .click(&browser.find("form.stack button[type=submit]").await?)
        .await?;
    let shown = browser.find("#created-password").await?;
    browser.text(&shown).await
}

#[tokio::test]
async fn create_connect_watch_health_and_delete_from_the_console() -> TestResult {
    let workspace = Workspace::new("console_lifecycle")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_HEALTH_INTERVAL_SECS", "1")])
        .await?;
    let browser = Browser::start(1280, 900).await?;
    browser.grant_clipboard(&server.base).await?;

    // `/` leads to the console; without tokens there is no sign-in.
    browser.goto(&format!("{}/", server.base)).await?;
    assert!(browser.url().await?.ends_with("/console/"));
    assert!(body_text(&browser).await?.contains("No instances yet"));

    // The API's validation messages, next to the field.
    browser
        .goto(&format!("{}/console/create", server.base))
        .await?;
    browser
        .type_into(&browser.find("#name").await?, "Bad_Name")
        .await?;
    browser
        .type_into(&browser.find("#password").await?, "short")
        .await?;
    browser
        .click(&browser.find("form.stack button[type=submit]").await?)
        .await?;
    let name_error = browser
        .wait_text("#name ~ .error", PAGE_LIMIT, |text| !text.is_empty())
        .await?;
    assert!(name_error.starts_with("name: "), "{name_error}");
    let password_error = browser
        .text(&browser.find("#password ~ .error").await?)
        .await?;
    assert_eq!(password_error, "password: must be 12 to 128 characters");
    // The password typed is not sent back into the page.
    assert!(!browser.source().await?.contains("value=\"short\""));

    // Create: the password is shown once, with a copy button that copies it.
    let password = create_from_form(&browser, &server.base, "shop-db", None).await?;
    assert_eq!(password.len(), 32, "{password}");
    browser
        .click(&browser.find("[data-copy=created-password]").await?)
        .await?;
    assert_eq!(browser.clipboard().await?, password);
    assert!(body_text(&browser).await?.contains("shown this once"));
    // The steps advance live to the end, on the same page.
    browser
        .wait_text("#operation-progress .badge", OPERATION_LIMIT, |text| {
            text == "succeeded"
        })
        .await?;
    let steps = browser.text(&browser.find("ol.steps").await?).await?;
    assert!(
        steps.contains("deploy") && steps.contains("finalize"),
        "{steps}"
    );

    // The instance page: running, the psql command copied and used with the password.
    browser
        .goto(&format!("{}/console/instances/shop-db", server.base))
        .await?;
    browser
        .wait_text("#status ~ dl .badge", PAGE_LIMIT, |text| text == "running")
        .await?;
    browser
        .click(&browser.find("[data-copy=conn-psql]").await?)
        .await?;
    let command = browser.clipboard().await?;
    assert!(
        command.starts_with("psql \"postgresql://postgres@127.0.0.1:"),
        "{command}"
    );
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} -Atc 'select 40 + 2'"))
        .env("PGPASSWORD", &password)
        .output()
        .await?;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A health check appears in the chart (the page refreshes itself).
    browser
        .wait_text("figure figcaption", OPERATION_LIMIT, |text| {
            text.starts_with("Last ") && text.contains("latest succeeded")
        })
        .await?;
    assert!(browser.try_find("svg.chart rect.ok").await?.is_some());
    browser
        .wait_text(
            "#status ~ dl dd:nth-of-type(2) .badge",
            PAGE_LIMIT,
            |text| text == "healthy",
        )
        .await?;

    // The instance list shows it, with its health.
    browser
        .goto(&format!("{}/console/instances", server.base))
        .await?;
    let row = browser
        .wait_text("tbody tr", PAGE_LIMIT, |text| text.contains("healthy"))
        .await?;
    assert!(row.contains("shop-db") && row.contains("running"), "{row}");

    // The password appears nowhere after its one display: not in any page, fragment or log.
    for path in [
        "/console/",
        "/console/instances",
        "/console/instances/shop-db",
        "/console/operations",
        "/console/live/instances/shop-db",
    ] {
        browser.goto(&format!("{}{path}", server.base)).await?;
        assert!(!browser.source().await?.contains(&password), "{path}");
    }

    // Delete: the button waits for the typed name; then the operation runs to its end.
    browser
        .goto(&format!("{}/console/instances/shop-db", server.base))
        .await?;
    let delete = browser.find("button.danger").await?;
    assert_eq!(
        browser
            .execute("return arguments[0].disabled", json!([{"element-6066-11e4-a52e-4f735466cecf": element_id(&browser, "button.danger").await?}]))
            .await?,
        json!(true)
    );
    browser
        .type_into(&browser.find("#confirm").await?, "shop-db")
        .await?;
    browser.click(&delete).await?;
    browser
        .wait_text("#operation-progress .badge", OPERATION_LIMIT, |text| {
            text == "succeeded"
        })
        .await?;
    assert!(browser.url().await?.contains("/console/operations/op_"));
    browser
        .goto(&format!("{}/console/instances", server.base))
        .await?;
    assert!(!body_text(&browser).await?.contains("shop-db"));
    let instance = server.get("/instances/shop-db").await?;
    assert_eq!(instance.body["state"], "deleted");
    assert!(!server.log().contains(&password));
    browser.quit().await?;
    Ok(())
}

/// The WebDriver id of the first element `css` selects (for script arguments).
async fn element_id(browser: &Browser, css: &str) -> Result<String, support::TestError> {
    let id = browser
        .execute("return document.querySelector(arguments[0])", json!([css]))
        .await?;
    Ok(id["element-6066-11e4-a52e-4f735466cecf"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn sign_in_read_only_and_sign_out() -> TestResult {
    let workspace = Workspace::new("console_sign_in")?;
    let server = workspace
        .start_server_with(
            "server.log",
            &[("TOYGRES_API_TOKENS", &tokens())],
            &StartOptions {
                token: Some(ADMIN_TOKEN.to_string()),
                ..StartOptions::default()
            },
        )
        .await?;
    let created = server
        .post("/instances", &json!({"name": "ledger"}))
        .await?;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let operation = created.body["operation"]["id"].as_str().unwrap_or_default();
    assert_eq!(
        server.wait_operation(operation).await?["status"],
        "succeeded"
    );

    let browser = Browser::start(1280, 900).await?;
    // Nothing without signing in; the way back is kept.
    browser
        .goto(&format!("{}/console/instances/ledger", server.base))
        .await?;
    assert!(browser.url().await?.contains("/console/sign-in?next="));
    let sign_in = |token: &'static str| {
        let browser = &browser;
        async move {
            browser
                .type_into(&browser.find("#token").await?, token)
                .await?;
            browser
                .click(&browser.find("button[type=submit]").await?)
                .await?;
            Ok::<(), support::TestError>(())
        }
    };
    sign_in("not-a-token-of-this-server-000").await?;
    let refused = browser
        .wait_text(".field .error", PAGE_LIMIT, |text| !text.is_empty())
        .await?;
    assert!(refused.contains("not a token"), "{refused}");
    sign_in(READER_TOKEN).await?;
    browser.find("#status").await?;
    let url = browser.url().await?;
    assert!(url.ends_with("/console/instances/ledger"), "{url}");
    assert!(!url.contains(READER_TOKEN));
    assert!(!browser.source().await?.contains(READER_TOKEN));

    // The cookie: HttpOnly, SameSite=Strict, not readable by scripts.
    let cookies = browser.cookies().await?;
    let session = cookies
        .iter()
        .find(|cookie| cookie["name"] == "toygres-session")
        .ok_or("no session cookie")?;
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert!(
        !session["value"]
            .as_str()
            .unwrap_or_default()
            .contains(READER_TOKEN)
    );
    assert_eq!(
        browser.execute("return document.cookie", json!([])).await?,
        ""
    );

    // A read-only console: no create link, no delete form; a delete posted anyway (with this
    // session's own CSRF token) is refused, and the instance stays.
    assert!(
        browser
            .try_find("a[href='/console/create']")
            .await?
            .is_none()
    );
    assert!(browser.try_find("button.danger").await?.is_none());
    assert!(body_text(&browser).await?.contains("read-only token"));
    let answer = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('input[name=csrf]').value;
             fetch('/console/instances/ledger/delete', {method: 'POST',
                 body: new URLSearchParams({csrf: csrf, confirm: 'ledger'})})
               .then(async (r) => done([r.status, await r.text()]), (e) => done([0, String(e)]));",
            json!([]),
        )
        .await?;
    assert_eq!(answer[0], 403, "{answer}");
    assert!(answer[1].as_str().unwrap_or_default().contains("read-only"));
    browser
        .goto(&format!("{}/console/create", server.base))
        .await?;
    assert!(body_text(&browser).await?.contains("read-only"));
    assert_eq!(
        server.get("/instances/ledger").await?.body["state"],
        "running"
    );

    // Sign out: the session is gone, pages lead to the sign-in again.
    browser.goto(&format!("{}/console/", server.base)).await?;
    browser
        .click(
            &browser
                .find("form[action='/console/sign-out'] button")
                .await?,
        )
        .await?;
    browser.find("#token").await?;
    browser
        .goto(&format!("{}/console/instances", server.base))
        .await?;
    assert!(browser.url().await?.contains("/console/sign-in"));

    // An admin token: the actions are there, and the delete works.
    sign_in(ADMIN_TOKEN).await?;
    // Signed in once the admin's navigation shows (the post and its redirect are done).
    browser.find("a[href='/console/create']").await?;
    browser
        .goto(&format!("{}/console/instances/ledger", server.base))
        .await?;
    browser
        .type_into(&browser.find("#confirm").await?, "ledger")
        .await?;
    browser.click(&browser.find("button.danger").await?).await?;
    browser
        .wait_text("#operation-progress .badge", OPERATION_LIMIT, |text| {
            text == "succeeded"
        })
        .await?;
    assert_eq!(
        server.get("/instances/ledger").await?.body["state"],
        "deleted"
    );
    // The API never takes the console's cookie for a token.
    let cookie = browser
        .cookies()
        .await?
        .into_iter()
        .find(|cookie| cookie["name"] == "toygres-session")
        .and_then(|cookie| cookie["value"].as_str().map(str::to_string))
        .ok_or("no session cookie")?;
    let with_cookie = server
        .send_anonymous(
            reqwest::Method::GET,
            "/instances",
            None,
            &[("cookie", &format!("toygres-session={cookie}"))],
        )
        .await?;
    assert_eq!(with_cookie.status, StatusCode::UNAUTHORIZED);
    assert!(!server.log().contains(READER_TOKEN) && !server.log().contains(ADMIN_TOKEN));
    browser.quit().await?;
    Ok(())
}

/// Types `name` into the create form on the page (keeping what it holds else), submits it, and
/// returns the password the next page shows once.
async fn fill_and_create(browser: &Browser, name: &str) -> Result<String, support::TestError> {
    browser
        .type_into(&browser.find("#name").await?, name)
        .await?;
    browser
        .click(&browser.find("form.stack button[type=submit]").await?)
        .await?;
    let shown = browser.find("#created-password").await?;
    browser.text(&shown).await
}

/// Signs in with `token` on the sign-in page the browser shows.
async fn sign_in(browser: &Browser, token: &str) -> TestResult {
    browser
        .type_into(&browser.find("#token").await?, token)
        .await?;
    browser
        .click(&browser.find("button[type=submit]").await?)
        .await?;
    Ok(())
}

/// Clicks `css` on the current page, waits for the operation it leads to to succeed, and opens
/// the instance's page again.
async fn act(browser: &Browser, base: &str, css: &str, instance: &str) -> TestResult {
    browser.click(&browser.find(css).await?).await?;
    browser
        .wait_text("#operation-progress .badge", OPERATION_LIMIT, |text| {
            text == "succeeded"
        })
        .await?;
    assert!(browser.url().await?.contains("/console/operations/op_"));
    browser
        .goto(&format!("{base}/console/instances/{instance}"))
        .await?;
    Ok(())
}

/// Clicks the first element `css` selects inside a live region, which its refresh may replace
/// between finding and clicking: found again then.
async fn click_live(browser: &Browser, css: &str) -> TestResult {
    let deadline = tokio::time::Instant::now() + PAGE_LIMIT;
    loop {
        let clicked = match browser.find(css).await {
            Ok(element) => browser.click(&element).await,
            Err(error) => Err(error),
        };
        match clicked {
            Ok(()) => return Ok(()),
            Err(error) if tokio::time::Instant::now() > deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Posts a form to `path` from the page, as a forged form would, with the page's own CSRF token
/// and `fields`; the answer's status and text.
async fn post_from_page(
    browser: &Browser,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<serde_json::Value, support::TestError> {
    let fields: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    browser
        .execute_async(
            "const [path, fields, done] = arguments;
             const csrf = document.querySelector('input[name=csrf]').value;
             fetch(path, {method: 'POST', body: new URLSearchParams({...fields, csrf: csrf})})
               .then(async (r) => done([r.status, await r.text()]), (e) => done([0, String(e)]));",
            json!([path, fields]),
        )
        .await
}

/// The state badge of the instance page, once it reads `state`.
async fn wait_state(browser: &Browser, state: &str) -> Result<String, support::TestError> {
    browser
        .wait_text("#status ~ dl .badge", PAGE_LIMIT, |text| text == state)
        .await
}

/// The port of an instance, as the API gives it.
async fn port_of(server: &Server, name: &str) -> Result<u16, support::TestError> {
    let instance = server.get(&format!("/instances/{name}")).await?;
    Ok(instance.body["port"]
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| format!("{name} has no port: {}", instance.text))?)
}

#[tokio::test]
async fn stop_start_parameters_password_backup_and_restore_from_the_console() -> TestResult {
    let workspace = Workspace::new("console_actions")?;
    let server = workspace
        .start_server_with(
            "server.log",
            &[("TOYGRES_API_TOKENS", &tokens())],
            &StartOptions {
                token: Some(ADMIN_TOKEN.to_string()),
                ..StartOptions::default()
            },
        )
        .await?;
    let old_password = "first-password-0123456789";
    let created = server
        .post(
            "/instances",
            &json!({"name": "orders", "password": old_password}),
        )
        .await?;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let operation = created.body["operation"]["id"].as_str().unwrap_or_default();
    assert_eq!(
        server.wait_operation(operation).await?["status"],
        "succeeded"
    );
    let port = port_of(&server, "orders").await?;
    let base = server.base.as_str();

    let browser = Browser::start(1280, 900).await?;
    browser.grant_clipboard(base).await?;
    browser
        .goto(&format!("{base}/console/instances/orders"))
        .await?;
    sign_in(&browser, ADMIN_TOKEN).await?;
    wait_state(&browser, "running").await?;
    // Only what applies to a running instance.
    assert!(browser.try_find("#action-start").await?.is_none());

    // Stop, then start.
    act(&browser, base, "#action-stop", "orders").await?;
    wait_state(&browser, "stopped").await?;
    assert!(browser.try_find("#action-stop").await?.is_none());
    assert!(browser.try_find("#parameters-form").await?.is_none());
    act(&browser, base, "#action-start", "orders").await?;
    wait_state(&browser, "running").await?;

    // A parameter the server refuses: the API's message, on the instance's page.
    browser
        .type_into(&browser.find("#parameter").await?, "work_mem")
        .await?;
    browser
        .type_into(&browser.find("#parameter-value").await?, "plenty")
        .await?;
    browser
        .click(&browser.find("#action-parameters").await?)
        .await?;
    let refused = browser
        .wait_text("#action-error", PAGE_LIMIT, |text| !text.is_empty())
        .await?;
    assert!(
        refused.starts_with("parameters.work_mem: ") && refused.ends_with("(invalid_request)"),
        "{refused}"
    );
    // One it takes: shown with the instance, and in effect on the server.
    browser
        .type_into(&browser.find("#parameter").await?, "work_mem")
        .await?;
    browser
        .type_into(&browser.find("#parameter-value").await?, "8MB")
        .await?;
    act(&browser, base, "#action-parameters", "orders").await?;
    browser
        .wait_text("#parameters", PAGE_LIMIT, |text| {
            text.contains("work_mem=8MB")
        })
        .await?;
    assert_eq!(
        support::psql(port, "postgres", old_password, "SHOW work_mem")?,
        "8MB"
    );

    // A new password, shown once; it opens connections and the old one no longer does.
    browser
        .click(&browser.find("#action-reset-password").await?)
        .await?;
    let new_password = browser.text(&browser.find("#new-password").await?).await?;
    assert_eq!(new_password.len(), 32, "{new_password}");
    assert!(body_text(&browser).await?.contains("shown this once"));
    assert!(!browser.url().await?.contains(&new_password));
    browser
        .click(&browser.find("[data-copy=new-password]").await?)
        .await?;
    assert_eq!(browser.clipboard().await?, new_password);
    browser
        .wait_text("#operation-progress .badge", OPERATION_LIMIT, |text| {
            text == "succeeded"
        })
        .await?;
    support::psql(
        port,
        "postgres",
        &new_password,
        "CREATE TABLE kept (value int); INSERT INTO kept VALUES (42)",
    )?;
    assert!(support::psql(port, "postgres", old_password, "SELECT 1").is_err());
    browser
        .goto(&format!("{base}/console/instances/orders"))
        .await?;
    assert!(!browser.source().await?.contains(&new_password));

    // A backup now, listed as succeeded.
    act(&browser, base, "#action-backups", "orders").await?;
    let row = browser
        .wait_text("#backup-list tbody tr", PAGE_LIMIT, |text| {
            text.contains("succeeded")
        })
        .await?;
    assert!(row.contains("bk_") && row.contains("full"), "{row}");
    let backup_id = browser
        .wait_text("#backup-list tbody tr code", PAGE_LIMIT, |text| {
            text.starts_with("bk_")
        })
        .await?;

    // Verify it: restored into a scratch server and read; the list says when.
    click_live(&browser, "#backup-list button[aria-label^=Verify]").await?;
    browser
        .wait_text("#operation-progress .badge", OPERATION_LIMIT, |text| {
            text == "succeeded"
        })
        .await?;
    browser
        .goto(&format!("{base}/console/instances/orders"))
        .await?;
    browser
        .wait_text(
            "#backup-list tbody tr td[data-label=Verified]",
            PAGE_LIMIT,
            |text| text.ends_with(" ago"),
        )
        .await?;

    // Restore it into a new instance: the create form comes filled in.
    click_live(&browser, "#backup-list a.button").await?;
    browser.find("#restore_instance").await?;
    assert_eq!(
        browser
            .execute(
                "return document.getElementById('restore_instance').value",
                json!([])
            )
            .await?,
        "orders"
    );
    assert_eq!(
        browser
            .execute(
                "return document.getElementById('restore_backup_id').value",
                json!([])
            )
            .await?,
        json!(backup_id)
    );
    let copy_password = fill_and_create(&browser, "orders-copy").await?;
    browser
        .wait_text("#operation-progress .badge", OPERATION_LIMIT, |text| {
            text == "succeeded"
        })
        .await?;
    let copy_port = port_of(&server, "orders-copy").await?;
    assert_eq!(
        support::psql(
            copy_port,
            "postgres",
            &copy_password,
            "SELECT value FROM kept"
        )?,
        "42"
    );

    // The server enforces what the page offers: a start of a running instance, posted anyway,
    // is the API's 409 on the instance's page.
    browser
        .goto(&format!("{base}/console/instances/orders"))
        .await?;
    let answer = post_from_page(&browser, "/console/instances/orders/start", &[]).await?;
    assert_eq!(answer[0], 409, "{answer}");
    assert!(
        answer[1]
            .as_str()
            .unwrap_or_default()
            .contains("invalid_state"),
        "{answer}"
    );
    // Deletion protection on: no delete form, and a delete posted anyway is refused with the
    // API's words; off again.
    act(&browser, base, "#action-deletion-protection", "orders").await?;
    browser
        .wait_text("#delete-protected", PAGE_LIMIT, |text| {
            text.contains("Deletion protection is on")
        })
        .await?;
    assert!(browser.try_find("#confirm").await?.is_none());
    let answer = post_from_page(
        &browser,
        "/console/instances/orders/delete",
        &[("confirm", "orders")],
    )
    .await?;
    assert_eq!(answer[0], 409, "{answer}");
    assert!(
        answer[1]
            .as_str()
            .unwrap_or_default()
            .contains("deletion_protected"),
        "{answer}"
    );
    act(&browser, base, "#action-deletion-protection", "orders").await?;
    browser.find("#confirm").await?;

    // The copy goes with a final backup, which stays listed on its page.
    browser
        .goto(&format!("{base}/console/instances/orders-copy"))
        .await?;
    browser
        .type_into(&browser.find("#confirm").await?, "orders-copy")
        .await?;
    browser.click(&browser.find("#final_backup").await?).await?;
    act(&browser, base, "button.danger", "orders-copy").await?;
    wait_state(&browser, "deleted").await?;
    browser
        .wait_text("#backup-list tbody tr", PAGE_LIMIT, |text| {
            text.contains("succeeded")
        })
        .await?;

    // A read-only session sees no actions, and a stop posted anyway (with its own CSRF token)
    // is refused on the server.
    browser.goto(&format!("{base}/console/")).await?;
    browser
        .click(
            &browser
                .find("form[action='/console/sign-out'] button")
                .await?,
        )
        .await?;
    browser
        .goto(&format!("{base}/console/instances/orders"))
        .await?;
    sign_in(&browser, READER_TOKEN).await?;
    wait_state(&browser, "running").await?;
    assert!(browser.try_find("#action-stop").await?.is_none());
    assert!(browser.try_find("#parameters-form").await?.is_none());
    let answer = post_from_page(&browser, "/console/instances/orders/stop", &[]).await?;
    assert_eq!(answer[0], 403, "{answer}");
    assert!(answer[1].as_str().unwrap_or_default().contains("read-only"));
    assert_eq!(
        server.get("/instances/orders").await?.body["state"],
        "running"
    );
    let log = server.log();
    assert!(!log.contains(&new_password) && !log.contains(&copy_password));
    browser.quit().await?;
    Ok(())
}

/// A session cookie and its CSRF token, as a browser would get them from a console page.
async fn session_of(
    server: &Server,
    cookie_in: Option<&str>,
) -> Result<(String, String), support::TestError> {
    let mut headers = vec![];
    let cookie_header;
    if let Some(cookie) = cookie_in {
        cookie_header = cookie.to_string();
        headers.push(("cookie", cookie_header.as_str()));
    }
    let page = server
        .send_anonymous(reqwest::Method::GET, "/console/create", None, &headers)
        .await?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let cookie = match page.headers.get("set-cookie") {
        Some(value) => value
            .to_str()?
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string(),
        None => cookie_in.unwrap_or_default().to_string(),
    };
    let csrf = page
        .text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    Ok((cookie, csrf))
}

#[tokio::test]
async fn forged_and_cross_site_posts_are_refused() -> TestResult {
    let workspace = Workspace::new("console_forgery")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let port = server.port()?;
    let own = format!("http://127.0.0.1:{port}");
    let (cookie, csrf) = session_of(&server, None).await?;
    assert!(
        cookie.starts_with("toygres-session=") && !csrf.is_empty(),
        "{cookie} {csrf}"
    );
    let form = "application/x-www-form-urlencoded";
    let post = |body: String, headers: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            server
                .send_typed(
                    reqwest::Method::POST,
                    "/console/instances",
                    &body,
                    Some(form),
                    &headers,
                )
                .await
        }
    };
    // `Bad_Name` passes no guard it should not: a 422 means every guard let it through.
    let body = |csrf: &str| format!("csrf={csrf}&name=Bad_Name");
    let accepted = post(
        body(&csrf),
        vec![("origin", own.clone()), ("cookie", cookie.clone())],
    )
    .await?;
    assert_eq!(
        accepted.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        accepted.text
    );
    for (what, body, headers) in [
        (
            "no CSRF token",
            "name=Bad_Name".to_string(),
            vec![("origin", own.clone()), ("cookie", cookie.clone())],
        ),
        (
            "a wrong CSRF token",
            body("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            vec![("origin", own.clone()), ("cookie", cookie.clone())],
        ),
        (
            "no session cookie",
            body(&csrf),
            vec![("origin", own.clone())],
        ),
        ("no Origin", body(&csrf), vec![("cookie", cookie.clone())]),
        (
            "a cross-site fetch",
            body(&csrf),
            vec![
                ("origin", own.clone()),
                ("cookie", cookie.clone()),
                ("sec-fetch-site", "same-site".to_string()),
            ],
        ),
    ] {
        let refused = post(body, headers).await?;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            refused.text
        );
    }
    // Another session's token does not fit this session.
    let (other_cookie, _) = session_of(&server, None).await?;
    let refused = post(
        body(&csrf),
        vec![("origin", own.clone()), ("cookie", other_cookie)],
    )
    .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // The REST API still takes no form at all.
    let api = server
        .send_typed(
            reqwest::Method::POST,
            "/instances",
            "name=evil-db",
            Some(form),
            &[],
        )
        .await?;
    assert_eq!(api.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A real cross-site form post: a page served from another port (another origin of the same
    // site, so the SameSite cookie goes along) posts to the console as soon as it loads.
    let evil = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let evil_port = evil.local_addr()?.port();
    let target = format!("{own}/console/instances");
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{target}\"><input name=csrf value=guess><input name=name value=evil-db></form><script>document.getElementById('f').submit()</script>"
    );
    let serving = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = evil.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    let browser = Browser::start(1280, 900).await?;
    browser.goto(&format!("{own}/console/")).await?;
    browser
        .goto(&format!("http://127.0.0.1:{evil_port}/"))
        .await?;
    let answer = browser
        .wait_text("body", PAGE_LIMIT, |text| text.contains("forbidden"))
        .await?;
    assert!(answer.contains("Origin"), "{answer}");
    serving.abort();
    assert_eq!(
        server.get("/instances/evil-db").await?.status,
        StatusCode::NOT_FOUND
    );
    browser.quit().await?;
    Ok(())
}

#[tokio::test]
async fn every_page_at_both_widths_with_its_headers() -> TestResult {
    let workspace = Workspace::new("console_pages")?;
    let server = workspace
        .start_server_with(
            "server.log",
            &[
                ("TOYGRES_API_TOKENS", &tokens()),
                ("TOYGRES_HEALTH_INTERVAL_SECS", "1"),
            ],
            &StartOptions {
                token: Some(ADMIN_TOKEN.to_string()),
                ..StartOptions::default()
            },
        )
        .await?;
    let shots = std::env::var_os("TOYGRES_SCREENSHOTS_DIR").map(std::path::PathBuf::from);
    let browser = Browser::start(1280, 900).await?;
    let base = &server.base;

    // The sign-in page (before signing in: it leads a session on), then the console as an
    // admin.
    browser.goto(&format!("{base}/console/")).await?;
    let sign_in_url = browser.url().await?;
    for width in [1280u32, 390] {
        browser.set_viewport(width, 900).await?;
        browser.goto(&sign_in_url).await?;
        check_layout(&browser, "sign-in", width).await?;
        capture(&browser, shots.as_deref(), "sign-in", width).await?;
    }
    browser.set_viewport(1280, 900).await?;
    let mut pages: Vec<(&str, String)> = vec![("sign-in", sign_in_url)];
    browser
        .type_into(&browser.find("#token").await?, ADMIN_TOKEN)
        .await?;
    browser
        .click(&browser.find("button[type=submit]").await?)
        .await?;
    browser.find(".tiles").await?;
    pages.push(("overview-empty", format!("{base}/console/")));
    // Shown now, while there is no instance yet.
    for width in [1280u32, 390] {
        browser.set_viewport(width, 900).await?;
        browser.goto(&format!("{base}/console/")).await?;
        check_layout(&browser, "overview-empty", width).await?;
        capture(&browser, shots.as_deref(), "overview-empty", width).await?;
    }
    browser.set_viewport(1280, 900).await?;
    browser.goto(&format!("{base}/console/create")).await?;
    pages.push(("create", format!("{base}/console/create")));

    // Two instances, one of them from the form (the page that shows the password once: an
    // example password, given here, stands in the screenshot).
    let created = server
        .post(
            "/instances",
            &json!({"name": "orders-db", "storage_gb": 20}),
        )
        .await?;
    let first = created.body["operation"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    create_from_form(
        &browser,
        base,
        "analytics",
        Some("example-password-shown-once"),
    )
    .await?;
    browser
        .wait_text("#operation-progress .badge", OPERATION_LIMIT, |text| {
            text == "succeeded"
        })
        .await?;
    capture(&browser, shots.as_deref(), "created", 1280).await?;
    server.wait_operation(&first).await?;
    server
        .wait_instance("analytics", OPERATION_LIMIT, |instance| {
            instance["health"]["status"] == "healthy"
        })
        .await?;
    // A parameter and a backup for the instance's page.
    let patched = server
        .patch(
            "/instances/analytics",
            &json!({"parameters": {"work_mem": "8MB"}}),
        )
        .await?;
    assert_eq!(patched.status, StatusCode::ACCEPTED, "{}", patched.text);
    let patch_op = patched.body["operation"]["id"].as_str().unwrap_or_default();
    assert_eq!(
        server.wait_operation(patch_op).await?["status"],
        "succeeded"
    );
    let backup = server
        .post("/instances/analytics/backups", &json!({}))
        .await?;
    assert_eq!(backup.status, StatusCode::ACCEPTED, "{}", backup.text);
    let backup_op = backup.body["operation"]["id"].as_str().unwrap_or_default();
    assert_eq!(
        server.wait_operation(backup_op).await?["status"],
        "succeeded"
    );
    // A few health checks for the chart.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ops = server.get("/operations?instance=analytics").await?;
    let create_op = ops.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["kind"] == "create"))
        .and_then(|item| item["id"].as_str())
        .unwrap_or_default()
        .to_string();
    pages.extend([
        ("overview", format!("{base}/console/")),
        ("instances", format!("{base}/console/instances")),
        ("instance", format!("{base}/console/instances/analytics")),
        (
            "create-restore",
            format!("{base}/console/create?restore_from=analytics"),
        ),
        ("operations", format!("{base}/console/operations")),
        (
            "operation",
            format!("{base}/console/operations/{create_op}"),
        ),
    ]);

    let session = browser
        .cookies()
        .await?
        .into_iter()
        .find(|cookie| cookie["name"] == "toygres-session")
        .and_then(|cookie| {
            cookie["value"]
                .as_str()
                .map(|value| format!("toygres-session={value}"))
        })
        .ok_or("no session cookie")?;
    for (name, url) in &pages {
        // Headers and markup, as the server sends them to the signed-in browser.
        let reply = server
            .send_anonymous(
                reqwest::Method::GET,
                url.trim_start_matches(base.as_str()),
                None,
                // The sign-in page is asked for without the session (with it, it leads on).
                &[(
                    "cookie",
                    if *name == "sign-in" {
                        ""
                    } else {
                        session.as_str()
                    },
                )],
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(
            reply.text.contains("name=\"token\""),
            *name == "sign-in",
            "{name}: the page, not the sign-in"
        );
        let csp = reply
            .headers
            .get("content-security-policy")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{name}: {csp}"
        );
        assert_eq!(
            reply
                .headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        let html = reply.text.to_ascii_lowercase();
        assert!(
            !html.contains("<script>") && !html.contains(" style=") && !html.contains(" onclick="),
            "{name}"
        );
        if matches!(*name, "sign-in" | "overview-empty") {
            // Shown above, before signing in and before the first instance.
            continue;
        }
        for width in [1280u32, 390] {
            browser.set_viewport(width, 900).await?;
            browser.goto(url).await?;
            check_layout(&browser, name, width).await?;
            capture(&browser, shots.as_deref(), name, width).await?;
        }
        browser.set_viewport(1280, 900).await?;
    }
    browser.quit().await?;
    Ok(())
}

/// The page fits `width` (nothing wider than the screen) and every control is labelled and
/// reachable by keyboard.
async fn check_layout(browser: &Browser, name: &str, width: u32) -> TestResult {
    browser.find("main").await?;
    let overflow = browser
        .execute("return document.documentElement.scrollWidth", json!([]))
        .await?;
    assert!(
        overflow.as_u64().unwrap_or(u64::MAX) <= u64::from(width),
        "{name} at {width}: {overflow}"
    );
    let unlabelled = browser
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
                .filter((e) => e.tabIndex < 0 || (e.tagName !== 'BUTTON' && e.labels.length === 0 && !e.getAttribute('aria-label')))
                .map((e) => e.outerHTML)",
            json!([]),
        )
        .await?;
    assert_eq!(unlabelled, json!([]), "{name} at {width}");
    Ok(())
}

/// A screenshot `NAME-WIDTH.png` into `dir`, when screenshots are wanted.
async fn capture(
    browser: &Browser,
    dir: Option<&std::path::Path>,
    name: &str,
    width: u32,
) -> TestResult {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
        browser
            .screenshot(&dir.join(format!("{name}-{width}.png")))
            .await?;
    }
    Ok(())
}
