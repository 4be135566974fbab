-- One-to-one conversations are looked up from either side: the caller may be pair_hi.
CREATE INDEX ix_messages_pair_hi ON messages (pair_hi, pair_lo, id);
