//! Job definitions, on-demand runs and run logs.

use errand_api::{DefinitionList, DefinitionView, LogPage, RunDefinitionRequest};
use errand_core::{Job, JobId};
use reqwest::Method;

use crate::{Client, ClientError};

/// One object of a followed log stream.
#[derive(Debug, Clone, PartialEq)]
pub enum LogStreamItem {
    /// A line.
    Line(errand_core::LogEntry),
    /// Lines the per-attempt bound dropped.
    Gap(errand_api::LogGap),
    /// The attempt ended (or the stream did): the server's closing object.
    End(serde_json::Value),
}

/// A followed log stream (`GET /v1/jobs/{id}/logs?follow=true`).
pub struct LogFollow {
    resp: reqwest::Response,
    buf: Vec<u8>,
    ended: bool,
}

impl LogFollow {
    /// The next object, `None` after the end.
    ///
    /// # Errors
    /// A transport failure or an object that is not one of the stream's.
    pub async fn next(&mut self) -> Result<Option<LogStreamItem>, ClientError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let value: serde_json::Value = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Unreadable(format!("unreadable log stream: {e}")))?;
                return Ok(Some(parse_item(value)?));
            }
            if self.ended {
                return Ok(None);
            }
            match self.resp.chunk().await? {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => self.ended = true,
            }
        }
    }
}

fn parse_item(mut value: serde_json::Value) -> Result<LogStreamItem, ClientError> {
    let bad = |e: serde_json::Error| ClientError::Unreadable(format!("unreadable log stream: {e}"));
    if let Some(end) = value.get_mut("end") {
        return Ok(LogStreamItem::End(end.take()));
    }
    if let Some(gap) = value.get_mut("gap") {
        return serde_json::from_value(gap.take())
            .map(LogStreamItem::Gap)
            .map_err(bad);
    }
    serde_json::from_value(value)
        .map(LogStreamItem::Line)
        .map_err(bad)
}

impl Client {
    /// `GET /v1/definitions`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn definitions(&self) -> Result<DefinitionList, ClientError> {
        self.get("/v1/definitions").await
    }

    /// `GET /v1/definitions/{name}`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn definition(&self, name: &str) -> Result<DefinitionView, ClientError> {
        self.get(&format!("/v1/definitions/{}", seg(name))).await
    }

    /// `POST /v1/definitions/{name}/run`.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn run_definition(
        &self,
        name: &str,
        req: &RunDefinitionRequest,
    ) -> Result<Job, ClientError> {
        self.post(&format!("/v1/definitions/{}/run", seg(name)), req)
            .await
    }

    /// `POST /v1/definitions/{name}/stop` (or `/start`).
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn definition_switch(
        &self,
        name: &str,
        stop: bool,
    ) -> Result<DefinitionView, ClientError> {
        let verb = if stop { "stop" } else { "start" };
        self.send(self.request(
            Method::POST,
            &format!("/v1/definitions/{}/{verb}", seg(name)),
        ))
        .await
    }

    /// `GET /v1/jobs/{id}/logs`: one page.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn job_logs(
        &self,
        id: JobId,
        attempt: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<LogPage, ClientError> {
        let mut req = self.request(Method::GET, &format!("/v1/jobs/{id}/logs"));
        if let Some(a) = attempt {
            req = req.query(&[("attempt", a.to_string())]);
        }
        if let Some(c) = cursor {
            req = req.query(&[("cursor", c)]);
        }
        self.send(req).await
    }

    /// `GET /v1/jobs/{id}/logs?follow=true`: lines as they come, until the attempt ends.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn follow_logs(
        &self,
        id: JobId,
        attempt: Option<u32>,
    ) -> Result<LogFollow, ClientError> {
        self.follow_logs_after(id, attempt, None).await
    }

    /// [`Client::follow_logs`] from after a line already seen (`cursor`: `attempt:seq`), to
    /// pick up a stream that was cut where it left off.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn follow_logs_after(
        &self,
        id: JobId,
        attempt: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<LogFollow, ClientError> {
        let mut req = self
            .request(Method::GET, &format!("/v1/jobs/{id}/logs"))
            .query(&[("follow", "true")]);
        if let Some(a) = attempt {
            req = req.query(&[("attempt", a.to_string())]);
        }
        if let Some(c) = cursor {
            req = req.query(&[("cursor", c)]);
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = resp.bytes().await?;
            return Err(ClientError::from_answer(status, &bytes));
        }
        Ok(LogFollow {
            resp,
            buf: Vec::new(),
            ended: false,
        })
    }
}

/// A path segment, percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
