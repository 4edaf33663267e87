-- Idempotency keys belong to a caller: the scope is one API token (an HMAC of the token's id
-- under a subkey of the server's secret key, never the token), or the one local caller of a
-- server without tokens. The same key from two callers makes two independent requests.
--
-- The request hash is now an HMAC under a subkey of the secret key too. The hashes stored before
-- this migration are unsalted SHA-256 over bodies that may hold a chosen password, so anyone who
-- reads the database could test password guesses against them: they are erased, with their keys.
-- A retry with such an old key is then a new request; a create of a name still taken is refused
-- (409 name_in_use), as any create of that name would be.
ALTER TABLE operations ADD COLUMN idempotency_scope TEXT;

UPDATE operations SET idempotency_key = NULL, request_hash = NULL
 WHERE idempotency_key IS NOT NULL OR request_hash IS NOT NULL;

DROP INDEX operations_idempotency_key;
CREATE UNIQUE INDEX operations_idempotency_key ON operations (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A key comes with its request hash and its scope. (A key rotation erases the key and the hash
-- and may leave the scope: without a key it matches nothing.)
ALTER TABLE operations ADD CONSTRAINT operations_idempotency_complete CHECK (
    num_nulls(idempotency_key, request_hash) IN (0, 2)
    AND (idempotency_key IS NULL OR idempotency_scope IS NOT NULL)
);
