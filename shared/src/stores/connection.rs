//! One Redis connection type for every Redis-backed role: a single server
//! (`redis://host:port`, through a reconnecting `ConnectionManager`) or a
//! Redis Cluster (`redis-cluster://host:port,host:port,…`, any of its
//! masters as seeds). The roles' scripts touch keys of one hash slot each,
//! so they run unchanged on both.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::runtime::config::redact_url;

/// A connection to Redis or to a Redis Cluster; cheap to clone.
#[derive(Clone)]
pub enum RedisCon {
    /// One server.
    Single(ConnectionManager),
    /// A cluster: commands go to the master of their key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisCon {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisCon::Single(c) => c.req_packed_command(cmd),
            RedisCon::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisCon::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisCon::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisCon::Single(c) => c.get_db(),
            RedisCon::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether a Redis URL names a cluster.
pub fn is_cluster_url(url: &str) -> bool {
    url.starts_with("redis-cluster://")
}

/// Connects to the server or cluster `url` names and checks it answers
/// PING; the error is one line for the setting's message.
pub async fn connect(url: &str) -> Result<RedisCon, String> {
    let shown = redact_url(url);
    let timeout = |_| format!("{shown} did not answer within 5 s");
    let con = if let Some(nodes) = url.strip_prefix("redis-cluster://") {
        let seeds: Vec<String> = nodes.split(',').map(|n| format!("redis://{}", n.trim())).collect();
        let client = ClusterClientBuilder::new(seeds)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("invalid cluster URL: {e}"))?;
        let con = tokio::time::timeout(Duration::from_secs(5), client.get_async_connection())
            .await
            .map_err(timeout)?
            .map_err(|e| format!("cannot connect to the cluster {shown}: {e}"))?;
        RedisCon::Cluster(con)
    } else {
        let client = redis::Client::open(url).map_err(|e| format!("invalid URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        let con = tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager_with_config(config))
            .await
            .map_err(timeout)?
            .map_err(|e| format!("cannot connect to {shown}: {e}"))?;
        RedisCon::Single(con)
    };
    let mut ping = con.clone();
    let _: String =
        redis::cmd("PING").query_async(&mut ping).await.map_err(|e| format!("{shown} does not answer PING: {e}"))?;
    Ok(con)
}
