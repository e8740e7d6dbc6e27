"""A head with a trainable transformer layer of its own (from the teacher's last layer) on the
frozen teacher (BENCHMARKS.md, "Teacher heads"). Usage: python scripts/experiments/probe_head_layer.py
PARAGRAPHS LAYER STEPS NLAYERS LR, e.g. 1600 6 400 1 5e-4."""
# A head with its own transformer layer (init from the teacher's last layer) on frozen all-MiniLM-L6-v2.
import sys, random, torch, re, time, glob, copy
from transformers import AutoTokenizer, AutoModel
torch.manual_seed(0); random.seed(0); torch.set_num_threads(2)
T='.cache/teachers/all-MiniLM-L6-v2'
tok=AutoTokenizer.from_pretrained(T); m=AutoModel.from_pretrained(T).eval()
def paras(path):
    t=open(path).read(); ps=[re.sub(r'\s+',' ',p).strip() for p in t.split('\n\n')]
    return [p for p in ps if len(p)>80]
tr=[p for f in sorted(glob.glob('data/austen/train/*.txt')) for p in paras(f)]
va=paras('data/austen/validation/persuasion.txt')
random.shuffle(tr); random.shuffle(va)
def feats(ps, n, L):
    out=[]
    for i in range(0,n,32):
        enc=tok(ps[i:i+32],truncation=True,max_length=64,padding='max_length',return_tensors='pt')
        ids=enc.input_ids.clone(); lab=torch.full_like(ids,-100)
        special=(ids==tok.cls_token_id)|(ids==tok.sep_token_id)|(ids==tok.pad_token_id)
        sel=(torch.rand(ids.shape)<0.15)&~special
        lab[sel]=ids[sel]; r=torch.rand(ids.shape)
        ids[sel&(r<0.8)]=tok.mask_token_id
        rnd=sel&(r>=0.8)&(r<0.9); ids[rnd]=torch.randint(len(tok),ids.shape)[rnd]
        with torch.no_grad(): o=m(input_ids=ids,attention_mask=enc.attention_mask,output_hidden_states=True)
        out.append((o.hidden_states[L],enc.attention_mask,lab))
    return out
L=int(sys.argv[2]); steps=int(sys.argv[3]); nl=int(sys.argv[4])
t0=time.time(); tr_b=feats(tr,int(sys.argv[1]),L); va_b=feats(va,640,L); print('feats',time.time()-t0,flush=True)
layers=torch.nn.ModuleList([copy.deepcopy(m.encoder.layer[-1-i]) for i in range(nl)][::-1]).train()
W=m.embeddings.word_embeddings.weight.detach()
head=torch.nn.Sequential(torch.nn.Linear(384,384),torch.nn.GELU(),torch.nn.LayerNorm(384))
bias=torch.nn.Parameter(torch.zeros(W.shape[0]))
params=list(layers.parameters())+list(head.parameters())+[bias]
opt=torch.optim.AdamW(params,lr=float(sys.argv[5]))
def run(h,mask,lab):
    ext=(1.0-mask[:,None,None,:].float())*-1e9
    for l in layers:
        o=l(h,attention_mask=ext); h=o[0] if isinstance(o,tuple) else o
    sel=lab!=-100
    return head(h[sel])@W.T+bias, lab[sel]
for s in range(steps):
    h,mask,lab=tr_b[s%len(tr_b)]
    logits,y=run(h,mask,lab)
    loss=torch.nn.functional.cross_entropy(logits,y)
    opt.zero_grad(); loss.backward(); opt.step()
    if s%100==99:
        layers.eval(); c=n=0
        with torch.no_grad():
            for h,mask,lab in va_b:
                lo,y=run(h,mask,lab); c+=(lo.argmax(-1)==y).sum().item(); n+=len(y)
        layers.train(); print(f'step {s+1} loss {loss.item():.3f} held-out acc {c/n:.3f} ({time.time()-t0:.0f}s)',flush=True)
