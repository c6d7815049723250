from services.recommender.server import main

main()
