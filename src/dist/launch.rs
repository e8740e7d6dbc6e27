//! What a launcher tells a process about its place in a data-parallel run: the variables
//! torchrun sets (and Slurm or Kubernetes launchers imitate). With `WORLD_SIZE` unset the
//! process runs alone; `WORLD_SIZE=1` (torchrun with one process) forms a group of one, so
//! that a single GPU still goes through NCCL.

use std::time::Duration;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent already serves the store (TORCHELASTIC_USE_AGENT_STORE=True): every
    /// rank connects as a client, under the key prefix `/worker/attempt_N`.
    pub agent_store: Option<u32>,
    pub timeout: Duration,
}

/// The longest collective timeout accepted (one week), so no run waits forever.
const MAX_TIMEOUT_S: f64 = 7.0 * 24.0 * 3600.0;
/// How long a collective or the rendezvous may wait for the other ranks.
pub const DEFAULT_TIMEOUT_S: u64 = 600;

impl Launch {
    pub fn from_env() -> Result<Option<Launch>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// As `from_env`, reading variables through `var` (tests pass a map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
        let Some(world) = var("WORLD_SIZE") else {
            return Ok(None);
        };
        let num = |name: &str, v: String| -> Result<usize> {
            v.trim().parse::<usize>().map_err(|_| {
                Error::Distributed(format!("{name}={v:?} is not a non-negative integer"))
            })
        };
        let world = num("WORLD_SIZE", world)?;
        if world == 0 {
            return Err(Error::Distributed("WORLD_SIZE=0: need at least 1".into()));
        }
        let need = |name: &str| {
            var(name).ok_or_else(|| {
                Error::Distributed(format!(
                    "WORLD_SIZE={world} is set but {name} is not (launch with torchrun, or set RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)"
                ))
            })
        };
        let rank = num("RANK", need("RANK")?)?;
        if rank >= world {
            return Err(Error::Distributed(format!(
                "RANK={rank} is not below WORLD_SIZE={world}"
            )));
        }
        let local_rank = match var("LOCAL_RANK") {
            Some(v) => num("LOCAL_RANK", v)?,
            None => rank,
        };
        let master_addr = need("MASTER_ADDR")?;
        // An empty or blank host (or one with spaces) never resolves: the rendezvous would
        // retry it until the timeout.
        if master_addr.trim().is_empty() || master_addr.trim().contains(char::is_whitespace) {
            return Err(Error::Distributed(format!(
                "MASTER_ADDR={master_addr:?} is not a host name or address"
            )));
        }
        let port = need("MASTER_PORT")?;
        let master_port = port
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::Distributed(format!("MASTER_PORT={port:?} is not a port")))?;
        let agent_store = match var("TORCHELASTIC_USE_AGENT_STORE").as_deref() {
            Some("True") | Some("true") | Some("1") => Some(
                var("TORCHELASTIC_RESTART_COUNT")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
            _ => None,
        };
        let timeout = match var("DESTILA_DIST_TIMEOUT_S") {
            Some(v) => Duration::from_secs_f64(
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && *s <= MAX_TIMEOUT_S)
                    .ok_or_else(|| {
                        Error::Distributed(format!(
                            "DESTILA_DIST_TIMEOUT_S={v:?} is not a number of seconds above 0 and at most {MAX_TIMEOUT_S} (a week)"
                        ))
                    })?,
            ),
            None => Duration::from_secs(DEFAULT_TIMEOUT_S),
        };
        Ok(Some(Launch {
            rank,
            world,
            local_rank,
            master_addr,
            master_port,
            agent_store,
            timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Option<Launch>> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::from_vars(|k| m.get(k).cloned())
    }

    const FULL: [(&str, &str); 5] = [
        ("WORLD_SIZE", "4"),
        ("RANK", "3"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "10.0.0.1"),
        ("MASTER_PORT", "29500"),
    ];

    #[test]
    fn reads_torchruns_variables() {
        assert_eq!(from(&[]).unwrap(), None);
        let l = from(&FULL).unwrap().unwrap();
        assert_eq!((l.rank, l.world, l.local_rank), (3, 4, 1));
        assert_eq!((l.master_addr.as_str(), l.master_port), ("10.0.0.1", 29500));
        assert_eq!(l.agent_store, None);
        assert_eq!(l.timeout, Duration::from_secs(DEFAULT_TIMEOUT_S));
        let mut v = FULL.to_vec();
        v.extend([
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
            ("DESTILA_DIST_TIMEOUT_S", "7.5"),
        ]);
        let l = from(&v).unwrap().unwrap();
        assert_eq!(l.agent_store, Some(2));
        assert_eq!(l.timeout, Duration::from_millis(7500));
    }

    #[test]
    fn bad_variables_are_named() {
        for (drop, name) in [
            ("RANK", "RANK"),
            ("MASTER_ADDR", "MASTER_ADDR"),
            ("MASTER_PORT", "MASTER_PORT"),
        ] {
            let v: Vec<_> = FULL.iter().copied().filter(|(k, _)| *k != drop).collect();
            let e = from(&v).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains("WORLD_SIZE=4"), "{e}");
        }
        let with = |k: &str, val: &str| {
            let mut v: Vec<_> = FULL.iter().copied().filter(|(x, _)| *x != k).collect();
            v.push((k, val));
            from(&v).unwrap_err().to_string()
        };
        assert!(with("RANK", "4").contains("RANK=4 is not below WORLD_SIZE=4"));
        assert!(with("RANK", "x").contains("RANK=\"x\""));
        assert!(with("MASTER_PORT", "0").contains("MASTER_PORT"));
        assert!(with("MASTER_ADDR", "").contains("MASTER_ADDR=\"\""));
        assert!(with("MASTER_ADDR", "  ").contains("MASTER_ADDR"));
        assert!(with("WORLD_SIZE", "0").contains("WORLD_SIZE=0"));
        assert!(with("DESTILA_DIST_TIMEOUT_S", "-1").contains("DESTILA_DIST_TIMEOUT_S"));
        for bad in ["inf", "1e300", "NaN", "0"] {
            assert!(with("DESTILA_DIST_TIMEOUT_S", bad).contains("DESTILA_DIST_TIMEOUT_S"));
        }
    }
}
