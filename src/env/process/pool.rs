//! [`ProcessPool`]: live processes of one command, kept for reuse.

use super::*;

/// Live processes of one command, for reuse.
#[derive(Debug)]
pub struct ProcessPool {
    config: ProcessConfig,
    pub(super) idle: Mutex<Vec<Conn>>,
}

impl ProcessPool {
    /// An empty pool for `config`.
    pub fn new(config: ProcessConfig) -> Arc<ProcessPool> {
        Arc::new(ProcessPool {
            config,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// An environment: an idle process, else a new one (which says hello).
    ///
    /// # Errors
    /// [`EnvError::Failed`] when a process cannot start or breaks the
    /// protocol in `hello`.
    pub fn make(self: &Arc<Self>) -> Result<ProcessEnv> {
        // An idle process that exited meanwhile is dropped, not handed out.
        let idle = loop {
            let popped = self.idle.lock().expect("pool").pop();
            match popped {
                Some(mut c) => {
                    if matches!(c.child.try_wait(), Ok(None)) {
                        break Some(c);
                    }
                }
                None => break None,
            }
        };
        let reused = idle.is_some();
        let conn = match idle {
            Some(c) => c,
            None => Conn::spawn(&self.config)?,
        };
        Ok(ProcessEnv {
            config: self.config.clone(),
            label: self.config.label(),
            actions: conn.hello.actions.clone(),
            conn: Some(conn),
            reused,
            pool: Some(self.clone()),
            task: None,
            status: Status::Running,
            steps: 0,
            observation: Observation::default(),
            legal: Vec::new(),
        })
    }

    /// How the environment describes itself (from a process's `hello`; the
    /// process then waits in the pool).
    ///
    /// # Errors
    /// As [`ProcessPool::make`].
    pub fn describe(self: &Arc<Self>) -> Result<Description> {
        Ok(self.make()?.description())
    }

    /// Processes waiting for reuse.
    pub fn idle(&self) -> usize {
        self.idle.lock().expect("pool").len()
    }
}
