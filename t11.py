import sys; sys.path.insert(0,'/tmp/probeB'); from h import *
a=login('alice'); P='968b2273-092d-4863-ad33-094ce93b4104'
L1,L2,L3=open('/tmp/probeB/L.txt').read().split()
r=post(a,"/invites/71a73b89-328a-4f5c-80fa-a2d6b748de4e/revoke/",{},follow_redirects=True); print("revoke", r.status_code, re.findall(r'message--\w+">([^<]*)',r.text))
r=post(a,"/invites/71a73b89-328a-4f5c-80fa-a2d6b748de4e/revoke/",{},follow_redirects=True); print("revoke2", r.status_code, re.findall(r'message--\w+">([^<]*)',r.text))
for name,L in (("withdrawn",L1),("created-8d",L2),("expired",L3)):
    c=httpx.Client(base_url=B); r=c.get(L); print(name, r.status_code, text(r.text)[100:260])
r=a.get(f"/projects/{P}/invites/"); t=text(r.text); print(t[t.find('Invites made'):][:700])
