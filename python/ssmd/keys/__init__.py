"""Exchange API keys kept by ssmd (`ssmd key set|list|verify|rotate`, docs/keys.md).

store.py     a key (id + RSA private key), its fingerprint, and where keys are kept: a
             local file readable only by its owner, or the files of a Kubernetes Secret
             mounted into the container (what a `sealed:NAME` reference reads)
sealing.py   a SealedSecret the Sealed Secrets controller decrypts (kubeseal's format)
verify.py    proving a key works: one signed request to the environment's REST endpoint
"""
