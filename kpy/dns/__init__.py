"""kpy-dns: the cluster's DNS server (kpy's CoreDNS with its kubernetes plugin).

`records` holds the naming rules, `server` answers queries over UDP and TCP
with dnspython's wire format, `main` is the process with its informers."""
