"""An OpenAI-compatible chat endpoint as a block: the optional second opinion on replies."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.catalog import API_LOGO, docs_url
from dunning.replies.llm import LLMSettings


class ReplyLLM(Block):
    """An LLM consulted when the offline reply classifier is unsure.

    Any OpenAI-compatible `/v1/chat/completions` endpoint: a local Ollama
    (`http://127.0.0.1:11434`), vLLM, llama.cpp's server or a hosted API. It is asked only
    for replies whose offline confidence is below `min_confidence`, and its answer is used
    only if valid (known intent, sensible date); otherwise the offline answer stands.
    Without this block, classification is entirely offline.

    Attributes:
        base_url: Endpoint base URL, with or without /v1.
        model: Model name as the endpoint knows it.
        api_key: Bearer token, if the endpoint needs one (a secret).
        timeout: Seconds to wait for an answer.
        min_confidence: Ask the LLM only below this offline confidence.

    Examples:
        Save the endpoint once:
        ```python
        from blocks import ReplyLLM

        ReplyLLM(base_url="http://127.0.0.1:11434", model="llama3.1:8b").save(
            "BLOCK_NAME", overwrite=True
        )
        # then: dunning replies classify --llm BLOCK_NAME < replies.jsonl
        ```

        Load it (e.g. for process-replies' `llm` parameter):
        ```python
        from blocks import ReplyLLM

        reply_llm = ReplyLLM.load("BLOCK_NAME")
        print(reply_llm.settings().model)
        ```
    """

    _block_type_name = "Dunning Reply LLM"
    _description = "OpenAI-compatible chat endpoint used as a fallback for unsure replies."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)

    base_url: str = Field(
        "http://127.0.0.1:11434",
        description="Endpoint base URL, with or without /v1 (Ollama: http://127.0.0.1:11434).",
    )
    model: str = Field("llama3.1:8b", description="Model name as the endpoint knows it.")
    api_key: SecretStr | None = Field(None, description="Bearer token, if the endpoint needs one.")
    timeout: float = Field(20.0, gt=0, le=300, description="Seconds to wait for an answer.")
    min_confidence: float = Field(
        0.6, ge=0, le=1, description="Ask the LLM only below this offline confidence."
    )

    def settings(self) -> LLMSettings:
        """The plain settings the core uses (the key unwrapped only here)."""
        return LLMSettings(
            base_url=self.base_url,
            model=self.model,
            api_key=self.api_key.get_secret_value() if self.api_key else "",
            timeout=self.timeout,
            min_confidence=self.min_confidence,
        )
