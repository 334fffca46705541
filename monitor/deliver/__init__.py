"""Delivery: what is due in the outbox (outbox), how it is rendered (digest, payload) and sent
(email, webhook), and the two jobs that tie them to the store (dispatch). See docs/delivery.md."""
