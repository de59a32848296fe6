"""The company's knowledge base as a block: the folder of FAQ files drafted answers quote."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from blocks.catalog import FILE_LOGO, docs_url
from dunning.knowledge import KnowledgeBase as Passages
from dunning.knowledge import cached_knowledge


class KnowledgeBase(Block):
    """The company's knowledge base: a folder of Markdown/FAQ files (es, en, pt) that the
    drafted answers to customers' questions quote.

    A message the rules cannot act on ("¿Tienen servicio en Valparaíso?") gets a drafted
    answer quoting the most relevant passages of these files, in the customer's language,
    for a person to edit and approve in the desk; with nothing relevant, the draft says a
    person will answer. Sections under a heading, paragraphs of long sections and `Q:`/`A:`
    pairs are the passages; a first folder `es/`, `en/` or `pt/` gives their language. The
    search runs offline (TF-IDF); see docs/knowledge.md.

    Attributes:
        path: The folder of .md/.txt files, read (again when a file changes) by the
            process-replies runs.

    Examples:
        Save the folder once:
        ```python
        from blocks import KnowledgeBase

        KnowledgeBase(path="docs/examples/knowledge").save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for process-replies' `knowledge` parameter):
        ```python
        from blocks import KnowledgeBase

        knowledge_base = KnowledgeBase.load("BLOCK_NAME")
        print(knowledge_base.path)
        # hits = knowledge_base.load_passages().search("¿Tienen servicio en Valparaíso?")
        ```
    """

    _block_type_name = "Dunning Knowledge Base"
    _description = "Folder of FAQ files (es, en, pt) the drafted answers to customers quote."
    _logo_url = FILE_LOGO
    _documentation_url = docs_url(_block_type_name)

    path: str = Field(
        description="Folder of Markdown/text FAQ files, one subfolder per language (es, en, pt)."
    )

    def load_passages(self) -> Passages:
        """The passages and their search index (read once, again when a file changes).

        Raises:
            dunning.knowledge.KnowledgeError: the folder is missing or a file unreadable.
        """
        return cached_knowledge(self.path)
