"""How much of the masked token a head can read from the frozen teacher, layer by layer
(BENCHMARKS.md, "Teacher heads"). Usage: python scripts/experiments/probe_heads.py PARAGRAPHS LAYERS KINDS STEPS,
e.g. 3200 3,4,6 tied 400."""
# Fit an MLM head on frozen all-MiniLM-L6-v2 hidden states of layer L, held-out accuracy on Persuasion.
import sys, random, torch, re, time
from transformers import AutoTokenizer, AutoModel
torch.manual_seed(0); random.seed(0)
torch.set_num_threads(2)
T='.cache/teachers/all-MiniLM-L6-v2'
tok=AutoTokenizer.from_pretrained(T); m=AutoModel.from_pretrained(T).eval()
def paras(path):
    t=open(path).read(); ps=[re.sub(r'\s+',' ',p).strip() for p in t.split('\n\n')]
    return [p for p in ps if len(p)>80]
import glob
tr=[p for f in sorted(glob.glob('data/austen/train/*.txt')) for p in paras(f)]
va=paras('data/austen/validation/persuasion.txt')
random.shuffle(tr); random.shuffle(va)
def feats(ps, n):
    X=[];Y=[]
    for i in range(0,n,32):
        enc=tok(ps[i:i+32],truncation=True,max_length=128,padding=True,return_tensors='pt')
        ids=enc.input_ids.clone(); lab=torch.full_like(ids,-100)
        special=(ids==tok.cls_token_id)|(ids==tok.sep_token_id)|(ids==tok.pad_token_id)
        sel=(torch.rand(ids.shape)<0.15)&~special
        lab[sel]=ids[sel]
        r=torch.rand(ids.shape)
        ids[sel&(r<0.8)]=tok.mask_token_id
        rnd=sel&(r>=0.8)&(r<0.9); ids[rnd]=torch.randint(len(tok),ids.shape)[rnd]
        with torch.no_grad(): o=m(input_ids=ids,attention_mask=enc.attention_mask,output_hidden_states=True)
        hs=torch.stack(o.hidden_states,0)  # [7,B,S,H]
        X.append(hs[:,sel]); Y.append(lab[sel])
    return torch.cat(X,1), torch.cat(Y)
t0=time.time()
Xtr,Ytr=feats(tr,int(sys.argv[1])); Xva,Yva=feats(va,640)
print('feats',Xtr.shape,Xva.shape,time.time()-t0,flush=True)
W=m.embeddings.word_embeddings.weight.detach()
def fit(X,Xv,kind,steps=3000,lr=2e-3):
    H=X.shape[-1]
    if kind=='tied':
        head=torch.nn.Sequential(torch.nn.Linear(H,384),torch.nn.GELU(),torch.nn.LayerNorm(384))
        bias=torch.nn.Parameter(torch.zeros(W.shape[0])); params=list(head.parameters())+[bias]
        f=lambda x: head(x)@W.T+bias
    else:
        head=torch.nn.Sequential(torch.nn.Linear(H,384),torch.nn.GELU(),torch.nn.LayerNorm(384))
        dec=torch.nn.Linear(384,W.shape[0]); dec.weight.data.copy_(W)
        params=list(head.parameters())+list(dec.parameters())
        f=lambda x: dec(head(x))
    opt=torch.optim.AdamW(params,lr=lr)
    n=X.shape[0]
    for s in range(steps):
        idx=torch.randint(n,(512,))
        loss=torch.nn.functional.cross_entropy(f(X[idx]),Ytr[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad(): acc=(f(Xv).argmax(-1)==Yva).float().mean().item()
    return acc
for L in [int(a) for a in sys.argv[2].split(',')]:
    for kind in sys.argv[3].split(','):
        t0=time.time()
        acc=fit(Xtr[L],Xva[L],kind,int(sys.argv[4]))
        print(f'layer {L} {kind}: acc {acc:.3f} ({time.time()-t0:.0f}s)',flush=True)
# concatenation of layers
