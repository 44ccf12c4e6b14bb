"""kbase as a service: one process with the models loaded once, serving an HTTP JSON
API (:mod:`kbase.server.app`), the MCP tools (:mod:`kbase.server.mcp_server`) and a
web page (``static/``) over one :class:`~kbase.server.service.Service`.

Above the facade: everything here calls :class:`kbase.KnowledgeBase` and shapes
its typed results; nothing below imports it. See docs/server.md.
"""
