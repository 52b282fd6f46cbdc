//! Chat templates: the Jinja template a GGUF file carries in `tokenizer.chat_template`, rendered
//! with minijinja the way Hugging Face's `apply_chat_template` renders it.

use minijinja::{Environment, ErrorKind};
use sha2::{Digest, Sha256};

use super::ChatMessage;
use crate::error::{Error, Result};

/// The template used when a GGUF file has no `tokenizer.chat_template`: ChatML
/// (`<|im_start|>role\ncontent<|im_end|>\n` per message, then `<|im_start|>assistant\n`), the
/// most common format among small instruction-tuned models. A model trained on another format
/// still runs, but answers worse; such models should get a GGUF with a template.
pub(crate) const FALLBACK_CHAT_TEMPLATE: &str = "{% for message in messages %}\
{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\
{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template.
pub(crate) struct ChatTemplate {
    environment: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts templates see under those names.
    pub(crate) fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut environment = Environment::new();
        // Hugging Face renders with jinja2's trim_blocks and lstrip_blocks.
        environment.set_trim_blocks(true);
        environment.set_lstrip_blocks(true);
        // Python string and dict methods (`.strip()`, `.split()`, `.items()`) that templates
        // written for jinja2 call.
        environment
            .set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        environment.add_function("raise_exception", raise_exception);
        environment
            .add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|err| Error::Template(err.to_string()))?;
        Ok(ChatTemplate {
            environment,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Returns the hex SHA-256 of the template source.
    pub(crate) fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.source.as_bytes()))
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's answer
    /// begins.
    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .environment
            .get_template(TEMPLATE_NAME)
            .map_err(|err| Error::Template(err.to_string()))?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|err| Error::Template(err.to_string()))
    }
}

/// `raise_exception(message)`, which Hugging Face provides to templates to reject a conversation
/// (for example roles that do not alternate).
fn raise_exception(message: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Vec<ChatMessage> {
        vec![ChatMessage::system("Be brief."), ChatMessage::user("Hi?")]
    }

    #[test]
    fn fallback_template_renders_chatml() -> Result<()> {
        let template = ChatTemplate::new(FALLBACK_CHAT_TEMPLATE, "", "")?;
        let prompt = template.render(&conversation(), true)?;
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
        );
        let without_prompt = template.render(&conversation(), false)?;
        assert!(!without_prompt.ends_with("assistant\n"));
        Ok(())
    }

    #[test]
    fn python_methods_and_special_token_variables_work() -> Result<()> {
        let source = "{{ bos_token }}{% for m in messages %}[{{ m.role.upper() }}]{{ m.content.strip() }}{% endfor %}{{ eos_token }}";
        let template = ChatTemplate::new(source, "<s>", "</s>")?;
        let messages = vec![ChatMessage::user("  padded  ")];
        assert_eq!(template.render(&messages, true)?, "<s>[USER]padded</s>");
        Ok(())
    }

    #[test]
    fn raise_exception_becomes_a_template_error() -> Result<()> {
        let source = "{% if messages[0].role != 'user' %}{{ raise_exception('roles must alternate') }}{% endif %}ok";
        let template = ChatTemplate::new(source, "", "")?;
        match template.render(&conversation(), true) {
            Err(Error::Template(message)) => assert!(message.contains("roles must alternate")),
            other => panic!("expected a template error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn syntax_error_is_reported_at_compile_time() {
        assert!(matches!(
            ChatTemplate::new("{% for %}", "", ""),
            Err(Error::Template(_))
        ));
    }

    #[test]
    fn sha256_identifies_the_source() -> Result<()> {
        let first = ChatTemplate::new("a", "", "")?.sha256();
        let second = ChatTemplate::new("b", "", "")?.sha256();
        assert_eq!(first.len(), 64);
        assert_ne!(first, second);
        Ok(())
    }
}
