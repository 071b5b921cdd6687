// Attention's S = Q·Kᵀ for one head of a 64-row sequence (head dim 32, rows 768 floats apart as in the
// fused q|k|v product): OpenBLAS on Kᵀ directly, against copying K transposed first so the NN small kernel
// runs. docs/benchmarks.md, "Session 9". Build and run:
//   gcc -O2 attention_qk.c -o attention_qk $(pkg-config --cflags --libs openblas)
//   OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 ./attention_qk
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  int t=64,d=32,stride=768; int reps=20000;
  float *q=malloc(sizeof(float)*t*stride),*k=malloc(sizeof(float)*t*stride),*kt=malloc(sizeof(float)*d*t),*s=malloc(sizeof(float)*t*t);
  for(int i=0;i<t*stride;i++){q[i]=(i%7)*0.01f;k[i]=(i%5)*0.02f;}
  for(int i=0;i<d*t;i++)kt[i]=0.01f*(i%9);
  for(int round=0;round<3;round++){
  double t0=now();
  for(int r=0;r<reps;r++) cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,t,t,d,0.17f,q,stride,k,stride,0.f,s,t);
  double t1=now();
  for(int r=0;r<reps;r++){ for(int p=0;p<t;p++) for(int j=0;j<d;j++) kt[j*t+p]=k[p*stride+j];
     cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,t,t,d,0.17f,q,stride,kt,t,0.f,s,t);}
  double t2=now();
  for(int r=0;r<reps;r++) cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,t,t,d,0.17f,q,stride,kt,t,0.f,s,t);
  double t3=now();
  printf("NT (q·kᵀ, β=0): %.2f us   transpose+NN: %.2f us   NN alone: %.2f us\n",(t1-t0)/reps*1e6,(t2-t1)/reps*1e6,(t3-t2)/reps*1e6);
  }
  return 0;
}
