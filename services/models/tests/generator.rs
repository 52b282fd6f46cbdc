//! The GGUF generator on the real SmolLM2-135M-Instruct Q4_1 model against llama.cpp's greedy
//! continuations (`shared/reference/smollm2-greedy.json`), plus a tiny random-weight GGUF that
//! the tests write themselves (loading, generation, re-quantization, unsupported architectures).

mod common;

use std::sync::OnceLock;

use common::smollm2::{
    check_against_reference, generate_collecting, greedy, reference, smollm2_path,
};
use common::{write_tiny_model, write_tiny_model_named, TinyArch};
use vellum_models::{ChatMessage, Error, GenerationParams, Generator, GgufGenerator, StopReason};

/// The real model, loaded once for all tests (generations take turns on its lock).
fn smollm2() -> &'static GgufGenerator {
    static GENERATOR: OnceLock<GgufGenerator> = OnceLock::new();
    GENERATOR.get_or_init(|| {
        GgufGenerator::load(&smollm2_path()).unwrap_or_else(|err| panic!("load: {err}"))
    })
}

#[test]
fn greedy_continuations_follow_llama_cpp() {
    let generator = smollm2();
    assert_eq!(generator.architecture(), "llama");
    check_against_reference(generator);
}

#[test]
fn greedy_continuations_without_requantization_follow_llama_cpp() {
    let generator = GgufGenerator::load_with_requantization(&smollm2_path(), false)
        .unwrap_or_else(|err| panic!("load: {err}"));
    check_against_reference(&generator);
}

#[test]
fn candle_reference_implementation_also_follows_llama_cpp() {
    let generator = GgufGenerator::load_with(&smollm2_path(), true, false)
        .unwrap_or_else(|err| panic!("load: {err}"));
    check_against_reference(&generator);
}

/// Vellum's decoder computes what candle's quantized llama computes (same matmul kernels, f32
/// elsewhere), on the reference prompts and on a prompt longer than one prefill chunk (which
/// exercises attention over cached positions): every token of candle's greedy text is our
/// greedy choice too, or within 0.5 logits of it. Exact equality is not expected: the
/// quantized matmuls round each activation block to 8 bits, so a last-bit difference in
/// summation order can move a value across a rounding step; measured here, the largest gap is
/// about 0.2 (and near-ties such as "must"/"is" at 0.007 then flip the free-running text).
/// A real fault (rotary pairs, head grouping, a norm) costs several logits.
#[test]
fn vellum_decoder_and_candle_agree_on_every_token() {
    const MAX_LOGIT_GAP: f32 = 0.5;
    let ours = smollm2();
    let candle = GgufGenerator::load_with(&smollm2_path(), true, false)
        .unwrap_or_else(|err| panic!("load: {err}"));
    let mut prompts: Vec<String> = reference()
        .items
        .into_iter()
        .map(|item| item.prompt)
        .collect();
    let filler = "The parties agree that the supplier shall deliver the goods on time. ".repeat(60);
    assert!(
        ours.count_tokens(&filler).unwrap_or(0) > 512,
        "the long prompt must span more than one prefill chunk"
    );
    prompts.push(
        ours.render_chat(&[ChatMessage::user(format!(
            "{filler}\nSummarize the text above in one sentence."
        ))])
        .unwrap_or_else(|err| panic!("render: {err}")),
    );
    for prompt in &prompts {
        let (expected, _) = generate_collecting(&candle, prompt, &greedy(40));
        let gaps = ours
            .continuation_logit_gaps(prompt, &expected.text)
            .unwrap_or_else(|err| panic!("gaps: {err}"));
        let worst = gaps.iter().copied().fold(0.0_f32, f32::max);
        println!(
            "{} prompt tokens: worst gap {worst:.3} over {} tokens",
            expected.num_prompt_tokens,
            gaps.len()
        );
        assert!(
            !gaps.is_empty() && worst <= MAX_LOGIT_GAP,
            "worst gap {worst} over {:?} ({} prompt tokens)",
            expected.text,
            expected.num_prompt_tokens
        );
    }
}

#[test]
fn chat_template_renders_like_the_reference_prompts() {
    let generator = smollm2();
    let reference = reference();
    let first = reference.items.first().map(|item| item.prompt.as_str());
    let rendered = generator
        .render_chat(&[
            ChatMessage::system("You are a helpful assistant."),
            ChatMessage::user("What is the capital of France?"),
        ])
        .unwrap_or_else(|err| panic!("render_chat: {err}"));
    assert_eq!(Some(rendered.as_str()), first);
    assert_eq!(generator.template_sha256().len(), 64);
}

#[test]
fn chat_generation_equals_raw_generation_of_the_rendered_prompt() {
    let generator = smollm2();
    let messages = [
        ChatMessage::system("You are a helpful assistant."),
        ChatMessage::user("Name a colour."),
    ];
    let prompt = generator
        .render_chat(&messages)
        .unwrap_or_else(|err| panic!("render_chat: {err}"));
    let chat = generator
        .generate(&messages, &greedy(16), &mut |_: &str| {})
        .unwrap_or_else(|err| panic!("generate: {err}"));
    let (raw, _) = generate_collecting(generator, &prompt, &greedy(16));
    assert_eq!(chat.text, raw.text);
    assert_eq!(chat.num_prompt_tokens, raw.num_prompt_tokens);
}

#[test]
fn greedy_generation_is_repeatable() {
    let generator = smollm2();
    let messages = [ChatMessage::user("List three symptoms of influenza.")];
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut streamed = String::new();
        let generation = generator
            .generate(&messages, &greedy(24), &mut |piece: &str| {
                streamed.push_str(piece)
            })
            .unwrap_or_else(|err| panic!("generate: {err}"));
        assert_eq!(streamed, generation.text);
        assert!(!generation.text.is_empty());
        runs.push(generation.text);
    }
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn sampling_with_the_same_seed_is_repeatable() {
    let generator = smollm2();
    let messages = [ChatMessage::user("Write a haiku about the sea.")];
    let params = GenerationParams {
        max_tokens: 20,
        temperature: 0.8,
        top_p: Some(0.95),
        seed: 7,
        stop: Vec::new(),
        ..GenerationParams::default()
    };
    let first = generator
        .generate(&messages, &params, &mut |_: &str| {})
        .unwrap_or_else(|err| panic!("generate: {err}"));
    let second = generator
        .generate(&messages, &params, &mut |_: &str| {})
        .unwrap_or_else(|err| panic!("generate: {err}"));
    assert_eq!(first.text, second.text);
}

#[test]
fn generation_stops_before_a_stop_sequence() {
    let generator = smollm2();
    let prompt = reference()
        .items
        .get(2)
        .map(|item| item.prompt.clone())
        .unwrap_or_default();
    let (free, _) = generate_collecting(generator, &prompt, &greedy(40));
    // A stop sequence taken from the middle of the free-running text: the third word.
    let words: Vec<&str> = free.text.split_whitespace().collect();
    assert!(
        words.len() >= 3,
        "too short to pick a stop sequence: {:?}",
        free.text
    );
    let stop_word = words[2];
    let stop_offset = free.text.find(stop_word).unwrap_or(0);

    let params = GenerationParams {
        stop: vec!["never appears \u{1F600}".to_string(), stop_word.to_string()],
        ..greedy(40)
    };
    let (stopped, pieces) = generate_collecting(generator, &prompt, &params);
    assert_eq!(stopped.stop_reason, StopReason::StopSequence);
    assert_eq!(stopped.text, free.text[..stop_offset]);
    assert_eq!(pieces.concat(), stopped.text);
    assert!(stopped.num_generated_tokens < free.num_generated_tokens);
}

#[test]
fn generation_stops_at_max_tokens() {
    let generator = smollm2();
    let prompt = reference()
        .items
        .get(2)
        .map(|item| item.prompt.clone())
        .unwrap_or_default();
    let (generation, _) = generate_collecting(generator, &prompt, &greedy(5));
    assert_eq!(generation.stop_reason, StopReason::MaxTokens);
    assert_eq!(generation.num_generated_tokens, 5);
    assert!(generation.num_prompt_tokens > 20);
    let (none, _) = generate_collecting(generator, &prompt, &greedy(0));
    assert_eq!(none.num_generated_tokens, 0);
    assert!(none.text.is_empty());
}

#[test]
fn short_answer_ends_with_end_of_text() {
    let generator = smollm2();
    let prompt = reference()
        .items
        .first()
        .map(|item| item.prompt.clone())
        .unwrap_or_default();
    let (generation, _) = generate_collecting(generator, &prompt, &greedy(64));
    assert_eq!(
        generation.stop_reason,
        StopReason::EndOfText,
        "{:?}",
        generation.text
    );
    assert!(!generation.text.contains("<|im_end|>"));
}

#[test]
fn prompt_longer_than_the_context_is_rejected() {
    let generator = smollm2();
    let prompt = "word ".repeat(generator.context_length() + 10);
    let result = generator.generate_raw(&prompt, &greedy(4), &mut |_: &str| {});
    assert!(
        matches!(result, Err(Error::InvalidRequest(_))),
        "{result:?}"
    );
}

#[test]
fn counting_tokens_treats_special_token_text_as_text() {
    let generator = smollm2();
    let count = |text: &str| {
        generator
            .count_tokens(text)
            .unwrap_or_else(|err| panic!("count_tokens: {err}"))
    };
    assert_eq!(count(""), 0);
    let words = count("The capital of France is Paris.");
    assert!((5..=10).contains(&words), "{words}");
    assert!(
        count("<|im_start|>") > 1,
        "special-token text counted as one token"
    );
    assert!(generator.context_length() >= 2048);
    assert_eq!(generator.model_name(), "SmolLM2-135M-Instruct.Q4_1");
}

#[test]
fn truncated_gguf_is_an_error() {
    let bytes = std::fs::read(smollm2_path()).unwrap_or_else(|err| panic!("read: {err}"));
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    for len in [0, 4, 1000, 200_000, bytes.len() / 2] {
        let path = dir.path().join(format!("truncated-{len}.gguf"));
        std::fs::write(&path, &bytes[..len]).unwrap_or_else(|err| panic!("write: {err}"));
        match GgufGenerator::load(&path) {
            Err(Error::ModelFile {
                path: error_path,
                reason,
            }) => {
                assert_eq!(error_path, path);
                assert!(!reason.is_empty());
            }
            other => panic!("{len} bytes: expected a model file error, got {other:?}"),
        }
    }
    let missing = dir.path().join("missing.gguf");
    assert!(matches!(
        GgufGenerator::load(&missing),
        Err(Error::Io { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// A tiny llama GGUF with random weights, written by the test.

#[test]
fn tiny_random_gguf_loads_and_generates_the_requested_tokens() {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let path = dir.path().join("tiny-llama.gguf");
    write_tiny_model(&path, TinyArch::Llama);
    for requantize in [true, false] {
        let generator = GgufGenerator::load_with_requantization(&path, requantize)
            .unwrap_or_else(|err| panic!("load (requantize {requantize}): {err}"));
        assert_eq!(generator.model_name(), "tiny-llama");
        assert_eq!(generator.context_length(), 256);
        let messages = [ChatMessage::user("hello")];
        assert_eq!(
            generator.render_chat(&messages).ok().as_deref(),
            Some("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n")
        );
        let mut num_pieces = 0;
        let generation = generator
            .generate(&messages, &greedy(12), &mut |_: &str| num_pieces += 1)
            .unwrap_or_else(|err| panic!("generate: {err}"));
        assert_eq!(generation.stop_reason, StopReason::MaxTokens);
        assert_eq!(generation.num_generated_tokens, 12);
        assert!(!generation.text.is_empty());
        assert!(num_pieces >= 1);
        // <|im_start|> user \n h e l l o <|im_end|> \n <|im_start|> assistant \n, merged "hel".
        assert!(
            generation.num_prompt_tokens >= 8,
            "{}",
            generation.num_prompt_tokens
        );
    }
}

#[test]
fn unsupported_architecture_names_the_file_and_the_architecture() {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let path = dir.path().join("tiny-mamba.gguf");
    write_tiny_model_named(&path, TinyArch::Llama, "mamba");
    match GgufGenerator::load(&path) {
        Err(err @ Error::ModelFile { .. }) => {
            let message = err.to_string();
            assert!(message.contains("mamba"), "{message}");
            assert!(message.contains("tiny-mamba.gguf"), "{message}");
        }
        other => panic!("expected a model file error, got {other:?}"),
    }
}

/// A system prompt shared between requests (`share_system_prompt`): the second request that
/// begins with it keeps its keys and values instead of computing them again, and every output
/// is exactly what an unshared run gives, for a prompt longer than one prefill chunk too. A
/// request with another system prompt keeps nothing, and unshared requests never keep any; a
/// request without a system message shares the template's own beginning.
#[test]
fn a_shared_system_prompt_is_computed_once_and_changes_no_output() {
    // Its own generator: the shared one's cache is used by tests running beside this one.
    let generator =
        GgufGenerator::load(&smollm2_path()).unwrap_or_else(|err| panic!("load: {err}"));
    let system = ChatMessage::system(
        "You are a careful assistant for a law firm. Answer in one or two sentences, using only \
         the text the user gives.",
    );
    let clause = "The Supplier shall indemnify the Customer against all losses arising from any \
                  breach of this Agreement. ";
    let long_question = format!("{}Who indemnifies whom?", clause.repeat(30));
    let questions = [
        "What is an indemnity clause?".to_string(),
        long_question,
        "Which law governs a contract that names none?".to_string(),
    ];
    let run = |messages: &[ChatMessage], share: bool| {
        let params = GenerationParams {
            share_system_prompt: share,
            ..greedy(40)
        };
        generator
            .generate(messages, &params, &mut |_| {})
            .unwrap_or_else(|err| panic!("generate: {err}"))
    };
    let mut cached = Vec::new();
    for (index, question) in questions.iter().enumerate() {
        let messages = [system.clone(), ChatMessage::user(question)];
        let unshared = run(&messages, false);
        assert_eq!(unshared.num_cached_prompt_tokens, 0);
        // Nothing was shared before: the first shared run computes the prefix itself.
        let first = run(&messages, true);
        if index == 0 {
            assert_eq!(first.num_cached_prompt_tokens, 0);
        }
        let second = run(&messages, true);
        assert_eq!(second.text, unshared.text, "{question}");
        assert_eq!(first.text, unshared.text, "{question}");
        assert!(second.num_cached_prompt_tokens > 10, "{question}");
        assert!(second.num_cached_prompt_tokens < second.num_prompt_tokens);
        cached.push(second.num_cached_prompt_tokens);
    }
    assert!(
        questions[1].len() > 2000,
        "the long question spans two prefill chunks"
    );
    assert!(
        cached.windows(2).all(|pair| pair[0] == pair[1]),
        "{cached:?}"
    );

    // Another system prompt reuses nothing, and then its own prefix is the one kept.
    let other = [
        ChatMessage::system("You are terse."),
        ChatMessage::user("What is an indemnity clause?"),
    ];
    let changed = run(&other, true);
    assert_eq!(changed.num_cached_prompt_tokens, 0);
    assert!(run(&other, true).num_cached_prompt_tokens > 0);
    // No system message: the template's own beginning (SmolLM2's default system turn and the
    // user turn's opening) is shared whatever the setting, since no caller wrote it, and
    // changes no output: the rendered prompt run raw (nothing shared, one chunk) gives the
    // same text.
    let user_only = [ChatMessage::user("What is an indemnity clause?")];
    let first = run(&user_only, false);
    assert_eq!(first.num_cached_prompt_tokens, 0);
    let again = run(&[ChatMessage::user("Who signs a contract?")], false);
    assert!(
        (10..again.num_prompt_tokens).contains(&again.num_cached_prompt_tokens),
        "{} of {} prompt tokens kept",
        again.num_cached_prompt_tokens,
        again.num_prompt_tokens
    );
    let rendered = generator
        .render_chat(&user_only)
        .unwrap_or_else(|err| panic!("render: {err}"));
    let raw = generator
        .generate_raw(&rendered, &greedy(40), &mut |_| {})
        .unwrap_or_else(|err| panic!("generate: {err}"));
    assert_eq!(raw.num_cached_prompt_tokens, 0);
    let shared = run(&user_only, false);
    assert!(shared.num_cached_prompt_tokens > 10);
    assert_eq!(shared.text, raw.text);
    assert_eq!(first.text, raw.text);
    // The service's system prompt is still kept beside the template's.
    assert!(run(&other, true).num_cached_prompt_tokens > 0);
}

#[test]
fn concurrent_generations_share_steps_and_each_equals_its_answer_alone() {
    // Its own generator, so that the batch sizes seen are this test's.
    let generator =
        GgufGenerator::load(&smollm2_path()).unwrap_or_else(|err| panic!("load: {err}"));
    let clause = "The Supplier shall indemnify the Customer against all losses arising from any \
                  breach of this Agreement. ";
    let questions = [
        "What is an indemnity clause?".to_string(),
        "List three symptoms of influenza.".to_string(),
        format!("{}Who indemnifies whom?", clause.repeat(30)),
        "Write a short poem about the sea.".to_string(),
    ];
    let system = ChatMessage::system("You are a careful assistant. Answer briefly.");
    let messages = |question: &str| [system.clone(), ChatMessage::user(question)];
    let params = |share: bool| GenerationParams {
        share_system_prompt: share,
        stop: vec!["\n\n\n".to_string()],
        ..greedy(48)
    };
    let alone: Vec<_> = questions
        .iter()
        .map(|question| {
            generator
                .generate(&messages(question), &params(false), &mut |_| {})
                .unwrap_or_else(|err| panic!("generate: {err}"))
        })
        .collect();
    assert_eq!(generator.largest_batch(), 1, "one at a time, one per step");

    let start = std::sync::Barrier::new(questions.len());
    let together: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = questions
            .iter()
            .enumerate()
            .map(|(index, question)| {
                let (start, generator, messages, params) = (&start, &generator, &messages, &params);
                scope.spawn(move || {
                    start.wait();
                    let mut streamed = String::new();
                    let generation = generator
                        .generate(&messages(question), &params(index % 2 == 0), &mut |piece| {
                            streamed.push_str(piece)
                        })
                        .unwrap_or_else(|err| panic!("generate: {err}"));
                    (generation, streamed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| panic!("a generation panicked"))
            })
            .collect()
    });
    assert!(
        generator.largest_batch() >= 2,
        "the four generations never shared a step"
    );
    // Every prompt runs in chunks (its system turn, then the rest, the long question's in
    // two), and the worker reads the next chunks of all waiting prompts in one pass as far as
    // a chunk's worth of tokens goes: some of the four meet in a pass.
    assert!(
        generator.most_prompts_at_once() >= 2,
        "no two prompts were read in one pass"
    );
    for ((question, alone), (together, streamed)) in questions.iter().zip(&alone).zip(&together) {
        assert_eq!(together.text, alone.text, "{question}");
        assert_eq!(streamed, &together.text);
        assert_eq!(together.stop_reason, alone.stop_reason, "{question}");
        assert_eq!(together.num_generated_tokens, alone.num_generated_tokens);
        assert_eq!(together.num_prompt_tokens, alone.num_prompt_tokens);
    }
    assert!(alone
        .iter()
        .all(|generation| generation.num_generated_tokens > 5));
}

#[test]
fn a_cancelled_generation_stops_within_one_step() {
    let generator = smollm2();
    let cancel = vellum_models::CancelFlag::new();
    let params = GenerationParams {
        cancel: cancel.clone(),
        ..greedy(200)
    };
    let mut pieces = 0;
    let generation = generator
        .generate(
            &[ChatMessage::user(
                "Write a long story about a lighthouse keeper.",
            )],
            &params,
            &mut |_| {
                pieces += 1;
                if pieces == 3 {
                    cancel.cancel();
                }
            },
        )
        .unwrap_or_else(|err| panic!("generate: {err}"));
    assert_eq!(generation.stop_reason, StopReason::Cancelled);
    // Raised after the third piece shown. The worker checks the flag before every step, but
    // it runs beside this thread: on a loaded machine it may be a few tokens ahead of what this
    // thread has shown, so the bound is loose; 200 would mean the flag was never read.
    assert!(
        (3..=12).contains(&generation.num_generated_tokens),
        "{} tokens after cancelling at the third",
        generation.num_generated_tokens
    );
}

#[test]
fn a_panel_cache_file_is_written_once_then_mapped_and_the_model_answers_the_same() {
    use vellum_models::GenerationDevice;
    let folder = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let load = || {
        GgufGenerator::load_cached(&smollm2_path(), GenerationDevice::Cpu, Some(folder.path()))
            .unwrap_or_else(|err| panic!("load: {err}"))
    };
    let panel_files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(folder.path())
            .unwrap_or_else(|err| panic!("read_dir: {err}"))
            .map(|entry| entry.unwrap_or_else(|err| panic!("entry: {err}")).path())
            .collect()
    };
    let prompt = "The tenant shall pay the rent on the first day of each month.";
    let expected = " The landlord shall keep the building in good repair.";
    let answers = |generator: &GgufGenerator| {
        let (generation, _) = generate_collecting(generator, prompt, &greedy(32));
        let gaps = generator
            .continuation_logit_gaps(prompt, expected)
            .unwrap_or_else(|err| panic!("gaps: {err}"));
        let bits: Vec<u32> = gaps.iter().map(|gap| gap.to_bits()).collect();
        (generation.text, bits)
    };
    let plain = answers(smollm2());

    // The first load rearranges the weights and writes the file; the next maps it.
    let first = load();
    assert!(!first.weights_mapped(), "no file yet, nothing to map");
    let files = panel_files();
    assert_eq!(
        files.len(),
        1,
        "one panel cache file, no temporary left: {files:?}"
    );
    let sha256 = first.identity().file_sha256;
    let name = files[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        name.starts_with(sha256.as_str()) && name.ends_with(".panels"),
        "{name}"
    );
    assert_eq!(answers(&first), plain);
    drop(first);
    let mapped = load();
    assert!(mapped.weights_mapped(), "the second load maps the file");
    assert_eq!(
        answers(&mapped),
        plain,
        "the same text and logits from mapped panels"
    );
    drop(mapped);

    // A damaged file (one byte of the panels changed) is not used: the load rebuilds the
    // panels, answers as before, and writes the file anew.
    let mut bytes = std::fs::read(&files[0]).unwrap_or_else(|err| panic!("read: {err}"));
    bytes[1_000_000] ^= 0x10;
    std::fs::write(&files[0], &bytes).unwrap_or_else(|err| panic!("write: {err}"));
    let rebuilt = load();
    assert!(
        !rebuilt.weights_mapped(),
        "a damaged file must not be mapped"
    );
    assert_eq!(answers(&rebuilt), plain);
    drop(rebuilt);
    assert!(load().weights_mapped(), "the rewritten file maps again");
    assert_eq!(panel_files().len(), 1);
}
