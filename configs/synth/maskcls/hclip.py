# H-CLIP's hyperspherical PEFT (methods.md s.2) in the mask classifier, same settings as
# configs/synth/hclip.py (q = 32, POF on the text encoder, exact Cayley, DCRC 'paper').
_base_ = ['./_base_.py']
model = dict(clip=dict(peft=dict(
    type='hclip', q=32, orth='text', orth_lambda=float('inf'), cayley='exact', dcrc='paper', symmetric='both')))
