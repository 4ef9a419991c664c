//! A web application that enqueues a job from a request handler (axum).
//!
//! ```sh
//! errand serve &                                   # the server, on 127.0.0.1:7878
//! cargo run -p errand-worker --example worker &    # runs the jobs
//! cargo run -p errand-worker --example web         # this app, on 127.0.0.1:3000
//! curl -X POST localhost:3000/signup -H 'content-type: application/json' \
//!      -d '{"email":"ada@example.com","name":"Ada"}'
//! curl localhost:3000/signup/JOB_ID                # waits up to 10 s for the result
//! ```

#[path = "shared/mod.rs"]
mod shared;

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use errand_client::{Client, JobId, WaitError};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::{SendWelcome, Sent};

#[derive(Deserialize)]
struct Signup {
    email: String,
    name: String,
}

type Answer = (StatusCode, Json<Value>);

/// `POST /signup`: enqueues the welcome email and answers at once with the job's id.
async fn signup(State(client): State<Client>, Json(form): Json<Signup>) -> Answer {
    let job = SendWelcome {
        to: form.email,
        name: form.name,
    };
    match client.enqueue(job).await {
        Ok(job) => (StatusCode::ACCEPTED, Json(json!({ "job": job.id }))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

/// `GET /signup/{job}`: the email's result, waiting up to 10 s for it.
async fn status(State(client): State<Client>, Path(id): Path<String>) -> Answer {
    let Ok(id) = id.parse::<JobId>() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "not a job id" })),
        );
    };
    match client
        .wait_result::<Sent>(id, Duration::from_secs(10))
        .await
    {
        Ok(sent) => (StatusCode::OK, Json(json!({ "sent": sent.message_id }))),
        Err(WaitError::TimedOut { state, .. }) => {
            (StatusCode::ACCEPTED, Json(json!({ "state": state })))
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::new(&shared::server_url())?.with_timeout(Duration::from_secs(5));
    let app = Router::new()
        .route("/signup", post(signup))
        .route("/signup/{job}", get(status))
        .with_state(client);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("web app on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
