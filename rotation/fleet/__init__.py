"""The fleet: what hosts serve, the issuance ledger, revocation and served expiry."""
