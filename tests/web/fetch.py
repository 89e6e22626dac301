# GET https://SITE/ from 127.0.0.1:443, trusting only ROOT (Caddy's internal CA root).
# Prints "<status> <body>"; exits 1 unless the status is 200.
import socket
import ssl
import sys

root, site = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=root)
with socket.create_connection(("127.0.0.1", 443), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname=site) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {site}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
head, _, body = data.partition(b"\r\n\r\n")
status = head.split(b" ")[1].decode()
print(status, body.decode().strip())
sys.exit(0 if status == "200" else 1)
