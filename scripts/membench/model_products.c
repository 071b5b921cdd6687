// The `small` model's training products alone (batch 2,048 rows), each in a loop over the same buffers, and
// two square products, through OpenBLAS on one thread (best of 20). docs/benchmarks.md, "Session 8". Debian's
// OpenBLAS picks SSE3 kernels on CPUs newer than itself, so name the kernels as `dots` does:
//   gcc -O2 model_products.c -o model_products $(pkg-config --cflags --libs openblas)
//   OPENBLAS_CORETYPE=SkylakeX ./model_products
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float *x,*w,*y;
static void run(const char*name,int ta,int tb,int M,int N,int K,int lda,int ldb,float beta){
  double best=1e9;
  for(int r=0;r<20;r++){double t0=now();
    cblas_sgemm(CblasRowMajor,ta?CblasTrans:CblasNoTrans,tb?CblasTrans:CblasNoTrans,M,N,K,1,x,lda,w,ldb,beta,y,N);
    double t=now()-t0; if(t<best)best=t;}
  printf("%-28s M=%4d N=%4d K=%4d beta=%g  %.2f ms  %.1f GFLOP/s\n",name,M,N,K,beta,best*1e3,2.0*M*N*K/best/1e9);
}
int main(){
  openblas_set_num_threads(1);
  x=malloc(4*2048*1408);w=malloc(4*2048*1408);y=malloc(4*2048*1408);
  for(int i=0;i<2048*1408;i++){x[i]=rand()/(float)RAND_MAX;w[i]=rand()/(float)RAND_MAX;y[i]=0;}
  int io[][2]={{256,768},{256,256},{256,1408},{704,256}};
  for(int s=0;s<4;s++){int in=io[s][0],out=io[s][1];
    run("fwd y=x W^T (F,T)",0,1,2048,out,in,in,in,0);
    run("bwd dx=dy W (F,F)",0,0,2048,in,out,out,in,0);
    run("bwd dW+=dy^T x (T,F)",1,0,out,in,2048,out,in,1);
  }
  run("square 1024",0,0,1024,1024,1024,1024,1024,0);
  run("square 512",0,0,512,512,512,512,512,0);
}
