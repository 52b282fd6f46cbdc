//! Continuous batching: concurrent generations share decode steps.
//!
//! Why: one generated token reads every weight of the model once, and on a CPU that read (and
//! the per-step overhead of splitting small matmuls across threads) costs far more than the
//! arithmetic for one row. A step over four answers reads the weights once for all four, so
//! four answers take little longer per token than one. Without this, concurrent `ask`s queued
//! behind each other (77 s at p50 in the load test).
//!
//! How: one worker thread owns the running sequences. Callers send a [`Job`] and receive
//! [`Event`]s on a channel of their own; they do the detokenizing and stop-sequence checks
//! themselves, on their own thread. Each round the worker admits new jobs and runs one pass
//! of the model ([`Decoder::advance`]) over the next prompt chunk of the jobs still reading
//! their prompts (oldest first, up to a chunk's worth of tokens, so that a long prompt does
//! not stall the answers in progress for seconds) and the next token of every sequence that
//! is generating. Each sequence has its own KV cache and sampler, and its logits are bit for
//! bit those it would get alone, so an answer does not depend on what ran beside it (a
//! receipt's replay runs alone).
//!
//! A job ends at the end-of-text token, at its token limit, when its [`CancelFlag`] is set
//! (the HTTP layer sets it when the client goes away), or when its caller stops listening
//! (a stop sequence, or the caller is gone): within one step in every case.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvError, Sender};
use std::sync::Arc;
use std::time::Instant;

use super::decoder::{Decoder, Sequence};
use super::sampler::Sampler;
use super::{CancelFlag, StopReason, PROMPT_CHUNK_TOKENS};

/// Sequences generating at once. The service admits at most this many generations; more would
/// wait here, in order.
pub(crate) const MAX_BATCH: usize = 8;

/// System turns kept for reuse (~46 KB a token for SmolLM2: 1.1 MB for its 24-token default
/// turn): the service's answer, brief and summary prompts and the template's own, without
/// evicting one another as a single slot did.
const KEPT_SYSTEM_TURNS: usize = 4;

/// A generation for the worker.
pub(crate) struct Job {
    pub(crate) prompt: Vec<u32>,
    /// The first tokens of `prompt` that are its system turn (a system message's, or the
    /// template's own before a user's message; 0 if none): they run as a chunk of their own.
    pub(crate) system_prefix: usize,
    /// Reuse (and keep) the system turn's keys and values across jobs.
    pub(crate) share_system_prompt: bool,
    pub(crate) max_new_tokens: usize,
    pub(crate) sampler: Sampler,
    pub(crate) cancel: CancelFlag,
    pub(crate) events: Sender<Event>,
}

/// What the worker tells a job's caller, in this order: `Prefilled` once, `Token` per token
/// to show, then `Finished` or `Failed`.
#[derive(Debug)]
pub(crate) enum Event {
    Prefilled {
        prompt_seconds: f64,
        num_cached_prompt_tokens: usize,
    },
    Token(u32),
    Finished {
        reason: StopReason,
        /// Tokens sampled, the end-of-text token included.
        num_generated_tokens: usize,
    },
    Failed(String),
}

/// The handle callers submit jobs through; the worker thread ends when it is dropped.
pub(crate) struct Batcher {
    jobs: Sender<Job>,
    counters: Arc<Counters>,
}

/// What the worker has done so far (for tests and diagnostics).
#[derive(Default)]
struct Counters {
    /// The most sequences one pass has stepped (given their next token).
    largest_batch: AtomicUsize,
    /// The most jobs' prompt chunks one pass has read.
    most_prompts_at_once: AtomicUsize,
}

impl Batcher {
    /// Starts the worker for `decoder`; `end_ids` are the tokens that end a generation.
    pub(crate) fn start(decoder: Arc<Decoder>, end_ids: Vec<u32>) -> std::io::Result<Batcher> {
        let (jobs, incoming) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        // The generation's own threads, one per core: its steps and their parallel operations
        // run there, so that each step is handed over once, and searches (the embedder, on
        // rayon's global pool) are scheduled beside them by the OS rather than queued behind
        // whole steps.
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|index| format!("vellum-decode-{index}"))
            .build()
            .map_err(std::io::Error::other)?;
        let worker = Worker::new(decoder, end_ids, incoming, Arc::clone(&counters), pool);
        std::thread::Builder::new()
            .name("vellum-generate".into())
            .spawn(move || worker.run())?;
        Ok(Batcher { jobs, counters })
    }

    /// The most sequences one pass has stepped so far.
    pub(crate) fn largest_batch(&self) -> usize {
        self.counters.largest_batch.load(Ordering::Relaxed)
    }

    /// The most jobs' prompt chunks one pass has read so far.
    pub(crate) fn most_prompts_at_once(&self) -> usize {
        self.counters.most_prompts_at_once.load(Ordering::Relaxed)
    }

    /// Queues `job`; its events arrive on the receiver of `job.events`.
    pub(crate) fn submit(&self, job: Job) -> Result<(), String> {
        self.jobs
            .send(job)
            .map_err(|_| "the generation worker has stopped".to_string())
    }
}

/// Where a sequence is.
enum Phase {
    /// Its prompt runs chunk by chunk: the chunks still to run, as ranges of the prompt.
    Prompt {
        chunks: Vec<std::ops::Range<usize>>,
        started: Option<Instant>,
    },
    /// It generates; `next` is the token the next step runs.
    Generating { next: u32 },
}

struct Running {
    job: Job,
    sequence: Sequence,
    phase: Phase,
    num_cached_prompt_tokens: usize,
    num_generated_tokens: usize,
}

/// What a job does in a pass.
enum Part {
    /// Reads this chunk of its prompt.
    Prompt(std::ops::Range<usize>),
    /// Runs its next token.
    Step(u32),
}

enum Outcome {
    Continue,
    Done,
}

struct Worker {
    decoder: Arc<Decoder>,
    end_ids: Vec<u32>,
    incoming: Receiver<Job>,
    /// Jobs received but not yet running (more than [`MAX_BATCH`]).
    waiting: std::collections::VecDeque<Job>,
    running: Vec<Running>,
    /// The shared system turns' keys and values, the most recently computed last (at most
    /// [`KEPT_SYSTEM_TURNS`]): the service's own system prompts and the template's.
    system_turns: Vec<Sequence>,
    counters: Arc<Counters>,
    pool: rayon::ThreadPool,
}

impl Worker {
    fn new(
        decoder: Arc<Decoder>,
        end_ids: Vec<u32>,
        incoming: Receiver<Job>,
        counters: Arc<Counters>,
        pool: rayon::ThreadPool,
    ) -> Worker {
        Worker {
            pool,
            counters,
            decoder,
            end_ids,
            incoming,
            waiting: Default::default(),
            running: Vec::new(),
            system_turns: Vec::new(),
        }
    }

    fn run(mut self) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match self.incoming.recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(RecvError) => return,
                }
            }
            // A disconnected channel ends nothing here: the jobs in hand still finish, and the
            // blocking receive above ends the worker once there are none.
            while let Ok(job) = self.incoming.try_recv() {
                self.waiting.push_back(job);
            }
            while self.running.len() < MAX_BATCH {
                let Some(job) = self.waiting.pop_front() else {
                    break;
                };
                self.admit(job);
            }
            self.drop_cancelled();
            self.round();
        }
    }

    /// Starts a job: its sequence begins with the shared system turn when that is cached.
    fn admit(&mut self, job: Job) {
        let prefix = job.system_prefix.min(job.prompt.len());
        let cached = self.system_turns.iter().find(|cached| {
            job.share_system_prompt && prefix > 0 && cached.tokens() == &job.prompt[..prefix]
        });
        let (mut sequence, start) = match cached {
            Some(cached) => (cached.clone(), prefix),
            None => (self.decoder.new_sequence(), 0),
        };
        sequence.reserve((job.prompt.len() - start).saturating_add(job.max_new_tokens));
        // The system turn is always a chunk (or chunks) of its own, cached or not, so the rest
        // of the prompt meets the same chunk boundaries either way.
        let mut chunks = Vec::new();
        for (from, to) in [
            (start, prefix.max(start)),
            (prefix.max(start), job.prompt.len()),
        ] {
            let mut chunk_start = from;
            while chunk_start < to {
                let chunk_end = (chunk_start + PROMPT_CHUNK_TOKENS).min(to);
                chunks.push(chunk_start..chunk_end);
                chunk_start = chunk_end;
            }
        }
        if chunks.is_empty() {
            // Nothing to run would leave it waiting for ever (a caller checks for an empty
            // prompt first; this is the worker not trusting that).
            let _ = job
                .events
                .send(Event::Failed("the prompt has no tokens to run".into()));
            return;
        }
        self.running.push(Running {
            job,
            sequence,
            phase: Phase::Prompt {
                chunks,
                started: None,
            },
            num_cached_prompt_tokens: start,
            num_generated_tokens: 0,
        });
    }

    /// Ends the jobs whose flag is set before spending a step on them.
    fn drop_cancelled(&mut self) {
        self.running.retain(|running| {
            if !running.job.cancel.is_cancelled() {
                return true;
            }
            let _ = running.job.events.send(Event::Finished {
                reason: StopReason::Cancelled,
                num_generated_tokens: running.num_generated_tokens,
            });
            false
        });
    }

    /// One forward over this round's members: the next prompt chunk of each job reading its
    /// prompt, oldest first, as many as fit in [`PROMPT_CHUNK_TOKENS`] tokens (the oldest
    /// always), and the next token of every generating sequence. Jobs that arrive together
    /// read the weights once for all their prompts, and the answers in progress take their
    /// step in the same pass instead of a pass of their own; a long prompt still runs a chunk
    /// a round, so it does not stall them for more than a chunk. Each job's chunks are fixed
    /// when it is admitted, so its logits are those it gets alone.
    fn round(&mut self) {
        let mut budget = PROMPT_CHUNK_TOKENS;
        let mut prompts_closed = false;
        let mut members: Vec<(usize, Part)> = Vec::new();
        for (index, running) in self.running.iter_mut().enumerate() {
            match &mut running.phase {
                Phase::Prompt { chunks, started } => {
                    let Some(chunk) = chunks.first() else {
                        continue;
                    };
                    let fits = chunk.len() <= budget || budget == PROMPT_CHUNK_TOKENS;
                    if prompts_closed || !fits {
                        // Later jobs wait their turn rather than pass an older one.
                        prompts_closed = true;
                        continue;
                    }
                    budget = budget.saturating_sub(chunk.len());
                    started.get_or_insert_with(Instant::now);
                    members.push((index, Part::Prompt(chunk.clone())));
                }
                Phase::Generating { next } => members.push((index, Part::Step(*next))),
            }
        }
        if members.is_empty() {
            return;
        }
        let num_prompts = members
            .iter()
            .filter(|(_, part)| matches!(part, Part::Prompt(_)))
            .count();
        self.counters
            .largest_batch
            .fetch_max(members.len() - num_prompts, Ordering::Relaxed);
        self.counters
            .most_prompts_at_once
            .fetch_max(num_prompts, Ordering::Relaxed);

        let ran = {
            let mut sequences = Vec::with_capacity(members.len());
            let mut tokens: Vec<&[u32]> = Vec::with_capacity(members.len());
            let mut member = members.iter().peekable();
            for (index, running) in self.running.iter_mut().enumerate() {
                let Some((_, part)) = member.next_if(|(at, _)| *at == index) else {
                    continue;
                };
                tokens.push(match part {
                    Part::Prompt(chunk) => &running.job.prompt[chunk.clone()],
                    Part::Step(next) => std::slice::from_ref(next),
                });
                sequences.push(&mut running.sequence);
            }
            let decoder = &self.decoder;
            catch(&self.pool, || decoder.advance(&mut sequences, &tokens))
        };
        let logits = match ran {
            Ok(logits) => logits,
            Err(message) => {
                // A model fault: every sequence of the pass has a partly written cache.
                for &(index, _) in members.iter().rev() {
                    let running = self.running.remove(index);
                    let _ = running.job.events.send(Event::Failed(message.clone()));
                }
                return;
            }
        };

        let mut done = Vec::new();
        for ((index, part), logits) in members.into_iter().zip(logits.rows()) {
            if let Part::Prompt(chunk) = part {
                let running = &mut self.running[index];
                let Phase::Prompt { chunks, started } = &mut running.phase else {
                    continue;
                };
                chunks.remove(0);
                let is_last = chunks.is_empty();
                let started = *started.get_or_insert_with(Instant::now);
                let job = &running.job;
                if job.share_system_prompt
                    && job.system_prefix > 0
                    && chunk.end == job.system_prefix
                    && running.sequence.len() == job.system_prefix
                {
                    let turn = running.sequence.clone();
                    self.system_turns
                        .retain(|kept| kept.tokens() != turn.tokens());
                    self.system_turns.push(turn);
                    if self.system_turns.len() > KEPT_SYSTEM_TURNS {
                        self.system_turns.remove(0);
                    }
                }
                if !is_last {
                    continue;
                }
                let sent = running.job.events.send(Event::Prefilled {
                    prompt_seconds: started.elapsed().as_secs_f64(),
                    num_cached_prompt_tokens: running.num_cached_prompt_tokens,
                });
                if sent.is_err() {
                    done.push(index);
                    continue;
                }
            }
            if matches!(self.sample(index, logits), Outcome::Done) {
                done.push(index);
            }
        }
        for index in done.into_iter().rev() {
            self.running.remove(index);
        }
    }

    /// Samples the next token of `running[index]` from `logits` and tells its caller; the
    /// same order of checks as a generation alone: end of text, the token limit, cancellation.
    fn sample(&mut self, index: usize, logits: &[f32]) -> Outcome {
        let running = &mut self.running[index];
        let sampled = running.job.sampler.sample(logits).map_err(text);
        let token = match sampled {
            Ok(token) => token,
            Err(message) => {
                let _ = running.job.events.send(Event::Failed(message));
                return Outcome::Done;
            }
        };
        running.num_generated_tokens += 1;
        let finish = |running: &Running, reason| {
            let _ = running.job.events.send(Event::Finished {
                reason,
                num_generated_tokens: running.num_generated_tokens,
            });
            Outcome::Done
        };
        if self.end_ids.contains(&token) {
            return finish(running, StopReason::EndOfText);
        }
        if running.job.events.send(Event::Token(token)).is_err() {
            // The caller stopped listening: a stop sequence, or it is gone.
            return Outcome::Done;
        }
        if running.num_generated_tokens >= running.job.max_new_tokens {
            return finish(running, StopReason::MaxTokens);
        }
        if running.job.cancel.is_cancelled() {
            return finish(running, StopReason::Cancelled);
        }
        running.phase = Phase::Generating { next: token };
        Outcome::Continue
    }
}

fn text(err: candle_core::Error) -> String {
    err.to_string()
}

/// Runs `work`, turning an error or a panic into a message: a model fault fails the jobs it
/// touched, never the worker (which would leave every later caller without an answer).
fn catch<T: Send>(
    pool: &rayon::ThreadPool,
    work: impl FnOnce() -> candle_core::Result<T> + Send,
) -> Result<T, String> {
    // The work runs on a thread of the pool that its products fork onto: from this thread,
    // each of a step's ~150 parallel operations was handed to the pool and waited for, while
    // the pool's threads spun between them.
    let on_pool = || pool.install(work);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(on_pool)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.to_string()),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .map_or_else(
                || "the model failed".to_string(),
                |detail| format!("the model failed: {detail}"),
            )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_on_the_pool_becomes_a_message_and_the_pool_goes_on() {
        let pool = rayon::ThreadPoolBuilder::new().build().expect("pool");
        let failed = catch(&pool, || -> candle_core::Result<u32> {
            panic!("a broken kernel")
        });
        assert_eq!(failed, Err("the model failed: a broken kernel".to_string()));
        // The pool still runs work afterwards, its parallel operations included.
        let sum = catch(&pool, || {
            use rayon::prelude::*;
            Ok((0..1000_u32).into_par_iter().sum::<u32>())
        });
        assert_eq!(sum, Ok(499_500));
        let error = catch(&pool, || -> candle_core::Result<u32> {
            candle_core::bail!("no tokens")
        });
        // (candle appends a backtrace where RUST_BACKTRACE asks for one.)
        assert!(
            error
                .as_ref()
                .is_err_and(|message| message.starts_with("no tokens")),
            "{error:?}"
        );
    }
}
