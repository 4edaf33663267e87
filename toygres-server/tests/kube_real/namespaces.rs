//! Namespaces on the real API server: each instance in the namespace its create names, only in
//! allowed ones, with the permissions RoleBindings give there and nowhere else.

use crate::support::{Server, StartOptions, TestResult, Workspace};
use crate::testbed::{
    Fallible, NS, TEAM_B, TEAM_C, Testbed, create, delete, psql_through_in, text,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// The server on the testbed with `TOYGRES_K8S_NAMESPACES` set to `allowed`.
async fn serve_allowing(
    testbed: &Testbed,
    workspace: &Workspace,
    log: &str,
    allowed: &str,
) -> Fallible<Server> {
    testbed
        .serve(workspace, log, &[("TOYGRES_K8S_NAMESPACES", allowed)])
        .await
}

/// Asserts that every object of instance `name` is in `namespace` (volumes are cluster-wide).
async fn assert_placed_in(testbed: &Testbed, name: &str, namespace: &str) -> TestResult {
    let placed = testbed.placement_of(name).await?;
    let kinds: Vec<&str> = placed.iter().map(|(kind, _)| kind.as_str()).collect();
    for kind in [
        "Pod",
        "PersistentVolumeClaim",
        "Service",
        "Secret",
        "NetworkPolicy",
        "StatefulSet",
    ] {
        assert!(kinds.contains(&kind), "{name} has no {kind}: {placed:?}");
    }
    assert!(
        placed
            .iter()
            .all(|(_, found)| found.as_deref() == Some(namespace)),
        "{name} has objects outside {namespace}: {placed:?}"
    );
    Ok(())
}

/// Whether the real authorizer lets the ServiceAccount `verb` `resource` in `namespace`.
async fn service_account_may(
    testbed: &Testbed,
    namespace: &str,
    group: &str,
    resource: &str,
    verb: &str,
) -> Fallible<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(testbed.service_account().await?)
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|status| status.allowed))
}

/// Waits until `instance` is `failed` with `backend_lost`.
async fn wait_lost(server: &Server, name: &str) -> TestResult {
    let lost = server
        .wait_instance(name, Duration::from_secs(60), |i| i["state"] == "failed")
        .await?;
    assert_eq!(lost["error"]["code"], "backend_lost", "{lost}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_lives_in_the_namespace_its_create_names() -> TestResult {
    let Some(testbed) = Testbed::start("kube_real_namespaces", Duration::from_secs(1)).await?
    else {
        return Ok(());
    };
    testbed.bind(TEAM_B).await?;
    let workspace = Workspace::new("kube_real_namespaces")?;
    let allowed = format!("{NS},{TEAM_B}");
    let server = serve_allowing(&testbed, &workspace, "server.log", &allowed).await?;

    // One instance in each allowed namespace: the default when the create names none.
    let (alpha_password, alpha) =
        create(&server, json!({"name": "alpha", "expose": "internal"})).await?;
    assert_eq!(alpha["namespace"], NS);
    let (beta_password, beta) = create(
        &server,
        json!({"name": "beta", "expose": "internal", "namespace": TEAM_B}),
    )
    .await?;
    assert_eq!(beta["namespace"], TEAM_B);
    assert_eq!(beta["host"], "beta.team-b.svc.cluster.local");
    assert_placed_in(&testbed, "alpha", NS).await?;
    assert_placed_in(&testbed, "beta", TEAM_B).await?;
    for (namespace, name, password) in [
        (NS, "alpha", &alpha_password),
        (TEAM_B, "beta", &beta_password),
    ] {
        assert_eq!(
            psql_through_in(&testbed, namespace, name, password, "SELECT 42").await?,
            "42",
            "{namespace}/{name} answers with its password"
        );
    }
    let listed = server
        .get(&format!("/instances?namespace={TEAM_B}"))
        .await?;
    let names: Vec<&str> = listed.body["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert_eq!(names, ["beta"], "{}", listed.text);

    // Names stay unique across namespaces.
    let taken = server
        .post("/instances", &json!({"name": "alpha", "namespace": TEAM_B}))
        .await?;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
    assert_eq!(taken.error_code(), "name_in_use");

    // A namespace that exists but is not allowed: 422 naming the allowed ones, nothing written.
    let refused = server
        .post("/instances", &json!({"name": "gamma", "namespace": TEAM_C}))
        .await?;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(
        refused.body["error"]["field"], "namespace",
        "{}",
        refused.text
    );
    let message = text(&refused.body["error"]["message"], "message")?;
    assert!(
        message.contains(&format!("{NS}, {TEAM_B}")),
        "names the allowed ones: {message}"
    );
    assert_eq!(testbed.placement_of("gamma").await?, Vec::new());
    assert_eq!(
        server.get("/instances/gamma").await?.status,
        StatusCode::NOT_FOUND
    );

    // The real authorizer refuses the ServiceAccount in team-c, so the manifests cannot
    // quietly grant more than the RoleBindings say.
    for (group, resource, verb) in [
        ("apps", "statefulsets", "create"),
        ("", "secrets", "list"),
        ("", "pods", "get"),
        ("", "namespaces", "get"),
    ] {
        assert!(
            !service_account_may(&testbed, TEAM_C, group, resource, verb).await?,
            "{verb} {resource} in {TEAM_C}"
        );
        assert!(
            service_account_may(&testbed, TEAM_B, group, resource, verb).await?,
            "{verb} {resource} in {TEAM_B}"
        );
    }
    let secrets: Api<Secret> = Api::namespaced(testbed.service_account().await?, TEAM_C);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("listing Secrets in {TEAM_C} was not refused: {other:?}"),
    }

    // Drift: a StatefulSet deleted behind the control plane's back, in either namespace.
    for namespace in [NS, TEAM_B] {
        let name = if namespace == NS { "alpha" } else { "beta" };
        Api::<StatefulSet>::namespaced(testbed.admin.clone(), namespace)
            .delete(name, &DeleteParams::background())
            .await?;
        wait_lost(&server, name).await?;
    }

    // A delete in the non-default namespace removes everything with its labels there.
    delete(&server, "beta").await?;
    testbed.wait_nothing_labelled("beta").await?;
    delete(&server, "alpha").await?;
    testbed.wait_nothing_labelled("alpha").await?;
    assert!(
        !server.log().contains("is forbidden: User"),
        "the ServiceAccount was refused a call: {}",
        server.log()
    );

    // A namespace taken off the list while an instance lives there: drift no longer looks
    // there (the instance is not reported lost), and its delete still works.
    create(
        &server,
        json!({"name": "omega", "expose": "internal", "namespace": TEAM_B}),
    )
    .await?;
    drop(server);
    let server = serve_allowing(&testbed, &workspace, "server-narrowed.log", NS).await?;
    tokio::time::sleep(Duration::from_secs(5)).await; // a few drift passes (1 s, grace 2 s)
    let omega = server.get("/instances/omega").await?;
    assert_eq!(omega.body["state"], "running", "{}", omega.text);
    assert_eq!(omega.body["namespace"], TEAM_B);
    delete(&server, "omega").await?;
    testbed.wait_nothing_labelled("omega").await?;
    Ok(())
}

/// The body of `/readyz` once it answers `want`, within 30 s.
async fn wait_readyz(server: &Server, want: StatusCode) -> Fallible<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = server.get("/readyz").await?;
        if reply.status == want {
            return Ok(reply.body);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("/readyz stayed {}: {}", reply.status, reply.text).into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_role_binding_is_named_until_it_is_back() -> TestResult {
    let Some(testbed) = Testbed::start("kube_real_bindings", Duration::from_secs(1)).await? else {
        return Ok(());
    };
    testbed.bind(TEAM_B).await?;
    let workspace = Workspace::new("kube_real_bindings")?;
    let allowed = format!("{NS},{TEAM_B}");
    let server = serve_allowing(&testbed, &workspace, "server.log", &allowed).await?;

    // The RoleBinding goes while the server runs: /readyz names the namespace and the verbs.
    testbed.unbind(TEAM_B).await?;
    let unready = wait_readyz(&server, StatusCode::SERVICE_UNAVAILABLE).await?;
    let message = text(&unready["error"]["message"], "message")?;
    assert!(
        message.contains("create statefulsets.apps in namespace team-b"),
        "{message}"
    );
    assert!(!message.contains(&format!("namespace {NS}")), "{message}");
    // A create there is refused with that message, not a 500, and writes nothing.
    let refused = server
        .post("/instances", &json!({"name": "beta", "namespace": TEAM_B}))
        .await?;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    let message = text(&refused.body["error"]["message"], "message")?;
    assert!(
        message.contains("create statefulsets.apps in namespace team-b")
            && message.contains("RoleBinding"),
        "{message}"
    );
    assert_eq!(testbed.placement_of("beta").await?, Vec::new());

    // Restored: ready again without a restart, and creates there work.
    testbed.bind(TEAM_B).await?;
    wait_readyz(&server, StatusCode::OK).await?;
    let (password, _) = create(
        &server,
        json!({"name": "beta", "expose": "internal", "namespace": TEAM_B}),
    )
    .await?;
    assert_eq!(
        psql_through_in(&testbed, TEAM_B, "beta", &password, "SELECT 42").await?,
        "42"
    );
    delete(&server, "beta").await?;
    testbed.wait_nothing_labelled("beta").await?;
    drop(server);

    // An allowed namespace that does not exist: /readyz names it, a create there is a 422
    // saying so, before anything is written.
    let server = testbed
        .serve_with(
            &workspace,
            "server-ghost.log",
            &[("TOYGRES_K8S_NAMESPACES", "toygres,ghost")],
            &StartOptions {
                ready_path: "/healthz".into(),
                ..StartOptions::default()
            },
        )
        .await?;
    let unready = wait_readyz(&server, StatusCode::SERVICE_UNAVAILABLE).await?;
    let message = text(&unready["error"]["message"], "message")?;
    assert!(message.contains("in namespace ghost"), "{message}");
    let refused = server
        .post(
            "/instances",
            &json!({"name": "delta", "namespace": "ghost"}),
        )
        .await?;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(refused.body["error"]["field"], "namespace");
    let message = text(&refused.body["error"]["message"], "message")?;
    assert!(message.contains("ghost does not exist"), "{message}");
    assert_eq!(testbed.placement_of("delta").await?, Vec::new());
    Ok(())
}
