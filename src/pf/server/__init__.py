"""pf serve: ASGI app translating HTTP and WebSocket requests into engine calls.

Holds no business logic. Imports engine and everything below it.
"""
