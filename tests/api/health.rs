use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, backend_tests};

async fn healthz_answers_while_the_database_does(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["status"], "ok");
}

async fn unknown_api_routes_answer_json_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/api/no/such/route").await;
    assert_eq!(
        crate::helpers::error_code(res, StatusCode::NOT_FOUND).await,
        "not_found"
    );
}

backend_tests!(
    healthz_answers_while_the_database_does,
    unknown_api_routes_answer_json_404
);
