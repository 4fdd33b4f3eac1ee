// Start-up with a model, N starts of `serve --model stories260K` to the first /health 200 (issue 10).
// Usage: N=25 node bench/startup-runs.mjs /abs/path/to/shimmy [serve flags]; alternate two binaries
// run after run on a busy machine and compare the pairs.
import { spawn } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
const bin = process.argv[2], extra = process.argv.slice(3);
const N = +(process.env.N || 10);
let port = 23400 + Math.floor(Math.random()*500);
function get(p){return new Promise(r=>{const q=http.get({host:'127.0.0.1',port:p,path:'/health',timeout:500},s=>{s.resume();s.on('end',()=>r(s.statusCode))});q.on('error',()=>r(0));q.on('timeout',()=>{q.destroy();r(0)})})}
const res=[];
for (let i=0;i<N;i++){
  port++;
  const cwd=fs.mkdtempSync('/tmp/shimmy-startup-');
  const t0=performance.now();
  const p=spawn(bin,['serve','--bind','127.0.0.1:'+port,'--model',process.env.SHIMMY_MODEL || new URL('../../shared/models/stories260K.gguf', import.meta.url).pathname,...extra],{cwd,stdio:'ignore'});
  const dl=performance.now()+20000; while(performance.now()<dl){const s=await get(port); if(s===200)break; await new Promise(r=>setTimeout(r,1));}
  res.push(performance.now()-t0);
  p.kill('SIGTERM'); await new Promise(r=>p.on('exit',r));
  fs.rmSync(cwd,{recursive:true});
}
res.sort((a,b)=>a-b);
console.log(extra.join(' ')||'isolate', 'median', res[res.length>>1].toFixed(1), 'all', res.map(x=>x.toFixed(1)).join(' '));
