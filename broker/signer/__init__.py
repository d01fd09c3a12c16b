"""The log's checkpoint key apart from the log: a signer process and its client.

The key lives in the signer's own directory (`<home>.signer/`, 0700, key 0600), outside
the deployment home that holds audit.db. The gateway and `s284 audit checkpoint` reach it
over a Unix socket and never read the key. Like a witness, the signer remembers the last
checkpoint it signed and signs a new one only with a consistency proof from it: someone
holding the database can make it sign an extension of the log, never a rewrite.
"""

from broker.signer._client import SignerClient, signer_running
from broker.signer._core import SignerCore, SignerHome
from broker.signer._server import serve

__all__ = ["SignerClient", "SignerCore", "SignerHome", "serve", "signer_running"]
