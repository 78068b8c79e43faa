"""The conversation around a case: messages, requests for information, follow-up questions."""
